"""Backbones and the registry; importing this package registers every model."""

# Importing these modules registers the baselines and every variant.
from dynbench.models import (  # noqa: F401
    baselines,
    zoo_attention,
    zoo_cgc,
    zoo_condconv,
    zoo_dcd,
    zoo_dcd_ablation,
    zoo_dyconv,
    zoo_dynconv,
    zoo_odconv,
)
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
