"""The registry as a table: what ``dynbench list`` shows of the models a glob selects."""

from __future__ import annotations

import pandas as pd

from dynbench.errors import DynbenchError
from dynbench.models.registry import all_models, model_info, select_models


def models_frame(pattern: str, operator: str | None = None) -> pd.DataFrame:
    """Name, family, operator, input size and description of each registered model that
    ``pattern`` selects, of ``operator`` only when given (an unknown one is an error)."""
    infos = [model_info(n) for n in select_models(pattern)]
    if operator:
        operators = sorted({i.operator for i in all_models()})
        if operator not in operators:
            raise DynbenchError(f"unknown operator {operator!r}; accepted: {', '.join(operators)}")
        infos = [i for i in infos if i.operator == operator]
    rows = [
        {
            "name": i.name,
            "family": i.family,
            "operator": i.operator,
            "input": "x".join(map(str, i.input_size)),
            "description": i.description,
        }
        for i in infos
    ]
    return pd.DataFrame(rows)
