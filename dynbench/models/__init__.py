"""Backbones and the registry; importing this package registers every model."""

from dynbench.models import baselines  # noqa: F401  (registers the baselines)
from dynbench.models.registry import (
    ModelInfo,
    all_models,
    create_model,
    list_models,
    load_user_model,
    model_info,
    register_model,
)

__all__ = [
    "ModelInfo",
    "all_models",
    "create_model",
    "list_models",
    "load_user_model",
    "model_info",
    "register_model",
]
