"""Deterministic size figures of a model, computed fast enough to guard a whole registry.

Models are built on the ``meta`` device: no memory is allocated, and the
``torch.nn.init`` functions are replaced by zero fills while building (on meta they
would run slow Python reference kernels for values that do not exist). The
forward pass then only propagates shapes, which is all the conv+linear MAdds
count needs. A model that cannot run on meta (a user model calling ``.item()``,
say) is measured on the CPU instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dynbench.measure.params import count_params
from dynbench.measure.shape_counters import conv_linear_madds
from dynbench.models.registry import zero_init


def size_figures(
    build: Callable[[], nn.Module], input_size: tuple[int, int, int]
) -> dict[str, int]:
    """{'params', 'params_no_classifier', 'madds'} (conv+linear MAdds at batch 1)."""
    try:
        with torch.device("meta"), zero_init():
            model = build().eval()
        return _figures(model, torch.empty(1, *input_size, device="meta"))
    except (NotImplementedError, RuntimeError):
        model = build().eval()
        return _figures(model, torch.zeros(1, *input_size))


def _figures(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    params = count_params(model)
    return {
        "params": params["params"],
        "params_no_classifier": params["params_no_classifier"],
        "madds": conv_linear_madds(model, x),
    }
