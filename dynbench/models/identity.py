"""Which family and operator a user's model belongs to, carried by its records.

A registry model's family and operator are found by its name in any process. A user's
model (``--model``, ``--baseline module:factory``) or a model carrying a user's operator
(``--operator``) exists only in the run that built it, so each of its records carries its
identity in the settings (:func:`identity_settings`), and whatever later reads the records
(the run's summary, ``dynbench report``) registers the models they describe for as long as
it needs them (:func:`stored_models`): the report's tables, ratios and plots then place
them in their families as they place the registry's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping

from dynbench.errors import DynbenchError
from dynbench.models.registry import ModelInfo, find_model, register, unregister_model

USER = "user"  # the tag of every model a user gave
USER_OPERATOR = "user_operator"  # settings key of a model with a user's operator: its placement
IDENTITY_KEYS = ("family", "operator", "source", USER_OPERATOR)


def identity_settings(info: ModelInfo) -> dict[str, str]:
    """The settings that say where a user's model belongs (empty for a registry model)."""
    if not info.source:
        return {}
    settings = {"family": info.family, "operator": info.operator, "source": info.source}
    placement = next((t.split("=", 1)[1] for t in info.tags if t.startswith("placement=")), None)
    if placement is not None:
        settings[USER_OPERATOR] = placement
    return settings


def _not_buildable(**_: object):
    raise DynbenchError("a stored user model is described by its records, not built again")


def described(models: Iterable[str], settings: Iterable[object]) -> dict[str, dict]:
    """model -> its identity settings, for the records that carry one."""
    found: dict[str, dict] = {}
    for model, value in zip(models, settings, strict=True):
        s = json.loads(value or "{}") if isinstance(value, str) else value
        if isinstance(s, Mapping) and s.get("source") and model not in found:
            found[model] = {k: s[k] for k in IDENTITY_KEYS if k in s}
    return found


@contextlib.contextmanager
def stored_models(models: Iterable[str], settings: Iterable[object]) -> Iterator[list[str]]:
    """Register the user models the records describe (those the registry does not know)
    while the block runs; the names registered."""
    added = []
    for model, identity in described(models, settings).items():
        if find_model(model) is not None:
            continue
        placement = identity.get(USER_OPERATOR)
        register(
            model,
            _not_buildable,
            family=str(identity.get("family", model)),
            operator=str(identity.get("operator", USER)),
            description=f"user {'operator' if placement else 'model'} {identity['source']}",
            tags=(USER, *([f"placement={placement}"] if placement else [])),
            source=str(identity["source"]),
        )
        added.append(model)
    try:
        yield added
    finally:
        for model in added:
            unregister_model(model)
