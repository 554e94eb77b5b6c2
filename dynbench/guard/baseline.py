"""The baseline file: JSON, sorted keys, one model per line so diffs stay readable."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import dynbench
from dynbench.errors import DynbenchError
from dynbench.results.names import SIZE_METRICS

DEFAULT_BASELINE = "dynbench-baseline.json"


def dumps(models: dict[str, dict]) -> str:
    """Header fields first, then ``"name": {...}`` one per line, all keys sorted."""
    header = {
        "dynbench": dynbench.__version__,
        "torch": torch.__version__.split("+")[0],
        "metrics": list(SIZE_METRICS),
        "units": {
            "params": "parameters",
            "params_no_classifier": "parameters",
            "madds": "multiply-adds, conv+linear, batch 1",
        },
    }
    lines = ["{"]
    for key in sorted(header):
        lines.append(f"  {json.dumps(key)}: {json.dumps(header[key], sort_keys=True)},")
    lines.append('  "models": {')
    entries = [
        f"    {json.dumps(name)}: {json.dumps(models[name], sort_keys=True)}"
        for name in sorted(models)
    ]
    lines.append(",\n".join(entries))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def load(path: Path) -> dict[str, dict]:
    """The models of a baseline file; a missing or malformed file is a user error."""
    if not path.is_file():
        raise DynbenchError(
            f"baseline {str(path)!r} does not exist; create it with 'dynbench guard --update'"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DynbenchError(f"baseline {str(path)!r} is not valid JSON ({exc})") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise DynbenchError(
            f"baseline {str(path)!r} has no 'models' object; regenerate it with --update"
        )
    for name, figures in models.items():
        if not isinstance(figures, dict) or not all(
            isinstance(figures.get(m), int) for m in SIZE_METRICS
        ):
            raise DynbenchError(
                f"baseline {str(path)!r}: model {name!r} lacks integer {list(SIZE_METRICS)}"
            )
    return models


def save(path: Path, models: dict[str, dict]) -> None:
    path.write_text(dumps(models))
