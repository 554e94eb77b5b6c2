"""Shared DCD test cases: prepared layers, an active branch, the released code's branch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dynbench.ops.base import DynamicOp
from dynbench.ops.dcd import (
    DCDConv2d,
)

FP32 = {"rtol": 1e-5, "atol": 1e-6}


def _randomize_bn(module: nn.Module, seed: int) -> None:
    """Non-trivial affine and running statistics, so that folding the BNs is exercised."""
    gen = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm1d):
            size = bn.num_features
            bn.weight.data = torch.rand(size, generator=gen) + 0.5
            bn.bias.data = 0.1 * torch.randn(size, generator=gen)
            bn.running_mean = 0.1 * torch.randn(size, generator=gen)
            bn.running_var = torch.rand(size, generator=gen) + 0.5


def _prepared(module: DynamicOp, seed: int) -> DynamicOp:
    # Every layer scaled to keep activations around 0.1: fp32 round-off of the two
    # paths' different summation orders (~1e-7 relative x fan-in) then stays well
    # below the 1e-6 absolute tolerance.
    torch.manual_seed(seed)
    for param in module.parameters():
        param.data = 0.2 * torch.randn_like(param) / param[0].numel() ** 0.5
    _randomize_bn(module, seed)
    return module.eval()


def _both_paths(module: DynamicOp, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        module.set_impl("fast")
        fast = module(x)
        module.set_impl("naive")
        naive = module(x)
    return fast, naive


ROUTES = {"auto": None, "kernel": True, "feature_maps": False}


def _released_branch(module: DynamicOp, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Phi and the pre-activation of Lambda, written as the released code has them."""
    if isinstance(module, DCDConv2d):
        x = F.adaptive_avg_pool2d(x, module.pool_size).flatten(1)
    y = F.linear(x, module.fc)
    y = y * (F.relu6(F.linear(y, module.gate) + 3.0) / 3.0)
    phi = F.linear(y, module.fc_phi).view(-1, module.latent_dim, module.latent_dim)
    return phi, F.linear(y, module.fc_scale)


def _activate_branch(module: DynamicOp, x: torch.Tensor) -> DynamicOp:
    """Rescale the heads so that on ``x`` Lambda spreads over [0, 2], partly clipped, and
    Phi mixes the latent channels as strongly as the identity path carries them."""
    with torch.no_grad():
        phi, pre_scale = _released_branch(module, x)
        module.fc_scale.mul_(4.0 / pre_scale.std())
        module.fc_phi.mul_(0.5 / module.latent_dim**0.5 / phi.std())
        phi, pre_scale = _released_branch(module, x)
    scale = F.relu6(pre_scale + 3.0) / 3.0
    clipped = ((scale == 0) | (scale == 2)).any()
    assert clipped and scale.max() - scale.min() > 1 and ((scale > 0) & (scale < 2)).any()
    assert phi.abs().sum(2).mean() > 0.3
    return module


def _conv(kernel: int, stride: int, batch: int, bias: bool = False, seed: int = 0):
    conv = DCDConv2d(12, 20, kernel, stride, kernel // 2, bias, pool_size=2)
    conv = _prepared(conv, seed)
    gen = torch.Generator().manual_seed(seed + 100 * batch)
    x = torch.randn(batch, 12, 9, 9, generator=gen)
    return _activate_branch(conv, x), x


def _naive(module: DynamicOp, x: torch.Tensor) -> torch.Tensor:
    impl = module.impl
    module.set_impl("naive")
    try:
        with torch.no_grad():
            return module(x)
    finally:
        module.set_impl(impl)
