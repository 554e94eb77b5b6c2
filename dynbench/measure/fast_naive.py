"""Every dynamic layer of a model checked fast path against naive path, on the input the
layer receives inside the model (not a random one of its shape)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

import torch
from torch import Tensor, nn

from dynbench.ops.base import DynamicOp


def layer_inputs(model: nn.Module, kinds: type | tuple[type, ...], x: Tensor) -> dict[str, tuple]:
    """The forward arguments of each submodule of type ``kinds`` in one inference forward of
    ``model``, by module name, cloned (a module called twice: its first call). The hooks
    that catch them are removed before this returns: one left in place would run, and
    clone its input, on every later call."""
    captured: dict[str, tuple] = {}

    def catch(name: str) -> Callable:
        return lambda module, args: captured.setdefault(name, tuple(a.clone() for a in args))

    with ExitStack() as hooks, torch.inference_mode():
        for name, module in model.named_modules():
            if isinstance(module, kinds):
                hooks.callback(module.register_forward_pre_hook(catch(name)).remove)
        model(x)
    return captured


def fast_naive_mismatches(model: nn.Module, x: Tensor, rtol: float = 1e-5) -> list[str]:
    """Names of the dynamic layers whose fast output differs from their naive output (rtol,
    and atol ``rtol`` times the naive output's largest magnitude) on their input in
    ``model``; each layer is left on its fast path.

    Layer by layer, because whole-model outputs cannot be compared at random
    initialisation: DCD's residual is quadratic in its input there, so the relative
    rounding error doubles from layer to layer, and ResNet-50 DCD's two paths end 1%
    apart even in float64 (float32: as far apart as the outputs themselves).
    """
    modules = dict(model.named_modules())
    differing = []
    for name, args in layer_inputs(model, DynamicOp, x).items():
        layer = modules[name]
        with torch.inference_mode():
            fast = layer(*args)
            layer.set_impl("naive")
            try:
                naive = layer(*args)
            finally:
                layer.set_impl("fast")
        scale = naive.abs().max().item()
        if not torch.allclose(fast, naive, rtol=rtol, atol=rtol * scale):
            differing.append(name)
    return differing
