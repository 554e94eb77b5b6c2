"""The channels-last memory layout for a model with dynamic operators.

``nn.Module.to(memory_format=torch.channels_last)`` converts every 4-D parameter and refuses a
5-D one, and a kernel-dynamic operator keeps its K kernels as one (K, C_out, C_in, k, k)
tensor, or mixes its kernel from parameters in layouts of its own. So the layout is given
to the static convolutions' weights (``nn.Conv2d`` itself, not subclasses or operators), and
the activations take it from the input; every operator's own parameters stay as they are.
"""

from __future__ import annotations

import torch
from torch import nn


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` with every plain ``nn.Conv2d`` weight in channels-last layout (in place)."""
    with torch.no_grad():
        for module in model.modules():
            if type(module) is nn.Conv2d:
                weight = module.weight
                weight.data = weight.data.contiguous(memory_format=torch.channels_last)
    return model
