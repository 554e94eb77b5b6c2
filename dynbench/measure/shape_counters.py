"""The counters that compute MAdds from layer shapes: ``conv_linear`` and ``analytic``.

* ``conv_linear``: the papers' convention, multiply-adds of convolution and fully
  connected layers only, from each layer's shape. Dynamic operators report their own
  conv cost through a ``conv_linear_madds`` method.
* ``analytic``: conv_linear plus each operator's kernel aggregation and
  attention-times-feature multiplies, from its ``analytic_madds`` breakdown.

Both read forward hooks on the leaf layers (:func:`leaf_calls`); an operator that has
the counter's method is a leaf, its own sub-layers are not visited.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch import nn

from dynbench.measure.counter import Counted
from dynbench.ops.base import conv_madds, fc_madds
from dynbench.results.names import MADDS_PARTS

# set on a user operator's layers that declare no analytic_madds (models/user_operator.py)
NO_ANALYTIC = "dynbench_no_analytic_madds"

ROUTED_PARTS = ("aggregation", "feature_scale")


class AnalyticUnavailable(Exception):
    """A layer of the model declares no analytic count: the analytic total is unknown."""


class LeafHooks:
    """A shape counter's part in the shared forward: forward hooks on the leaves that
    have ``method`` (:func:`leaf_calls`), read by ``count`` from the calls they saw."""

    def __init__(
        self, model: nn.Module, method: str, count: Callable[[list[tuple]], Counted]
    ) -> None:
        self.model, self.method, self.count = model, method, count
        self.calls: list[tuple] = []
        self.handles: list = []

    def __enter__(self) -> LeafHooks:
        self.handles = _hook_leaves(self.model, self.method, self.calls)
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()

    def read(self, ops: Counter[str]) -> Counted:
        return self.count(self.calls)


def join_conv_linear(model: nn.Module) -> LeafHooks:
    return LeafHooks(model, "conv_linear_madds", _conv_linear_counted)


def join_analytic(model: nn.Module) -> LeafHooks:
    return LeafHooks(model, "analytic_madds", _analytic_counted)


def _conv_linear_counted(calls: list[tuple]) -> Counted:
    return Counted(total=sum(_conv_linear_of(calls).values()), skipped={})


def _analytic_counted(calls: list[tuple]) -> Counted:
    breakdown = _analytic_of(calls)
    return Counted(
        total=sum(breakdown.values()),
        skipped={},
        breakdown=breakdown,
        cheaper_route=cheaper_route_of(calls),
    )


def conv_linear_madds(model: nn.Module, x: torch.Tensor) -> int:
    return sum(conv_linear_by_module(model, x).values())


def conv_linear_by_module(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Per-module conv/linear MAdds from layer shapes (the papers' convention)."""
    return _conv_linear_of(leaf_calls(model, x, "conv_linear_madds"))


def _conv_linear_of(calls: list[tuple]) -> dict[str, int]:
    return {name: layer_madds(module, inputs, output) for name, module, inputs, output in calls}


def _analytic_of(calls: list[tuple]) -> dict[str, int]:
    """Whole-model MAdds by part: static conv/linear layers plus each operator's own analysis.

    Operators (anything with ``analytic_madds``) report conv, attention,
    aggregation and feature_scale; plain convs and linears count as conv.
    """
    parts = dict.fromkeys(MADDS_PARTS, 0)
    for name, module, _, _ in calls:
        if hasattr(module, NO_ANALYTIC) and not hasattr(module, "analytic_madds"):
            raise AnalyticUnavailable(
                f"analytic count unavailable: {getattr(module, NO_ANALYTIC)} (at {name}) "
                "declares no analytic_madds(x_shape, out_shape); the generic counters ran"
            )
    for _, module, inputs, output in calls:
        if hasattr(module, "analytic_madds"):
            for key, value in module.analytic_madds(
                tuple(inputs[0].shape), tuple(output.shape)
            ).items():
                parts[key] += int(value)
        else:
            parts["conv"] += layer_madds(module, inputs, output)
    return parts


def cheaper_route_of(calls: list[tuple]) -> dict[str, int]:
    """aggregation and feature_scale summed over the layers, each layer's part at the
    cheaper of its two placements: on the feature maps (``analytic_madds``, what the
    operators run) or on each sample's kernel (``kernel_route_madds``, where an operator
    has it; the other operators' parts count as they are). A counting convention of the
    DCD paper, which prices its channel attention either way, whichever is less."""
    totals = dict.fromkeys(ROUTED_PARTS, 0)
    for _, module, inputs, output in calls:
        if not hasattr(module, "analytic_madds"):
            continue
        shapes = (tuple(inputs[0].shape), tuple(output.shape))
        parts = module.analytic_madds(*shapes)
        routed = getattr(module, "kernel_route_madds", None)
        kernel = routed(*shapes) if routed is not None else parts
        for part in ROUTED_PARTS:
            totals[part] += int(min(parts[part], kernel[part]))
    return totals


def leaf_calls(model: nn.Module, x: torch.Tensor, method: str) -> list[tuple]:
    """(name, module, inputs, output) for every call of a conv/linear layer or an operator
    that has ``method`` (whose own sub-layers are then not visited)."""
    calls: list[tuple] = []
    handles = _hook_leaves(model, method, calls)
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return calls


def _hook_leaves(model: nn.Module, method: str, calls: list[tuple]) -> list:
    """Forward hooks that append :func:`leaf_calls`' tuples to ``calls``; their handles."""
    names = {m: n for n, m in model.named_modules()}
    inside_custom: set[nn.Module] = set()
    for module in model.modules():
        if hasattr(module, method):
            inside_custom.update(m for m in module.modules() if m is not module)

    def hook(module: nn.Module, inputs, output) -> None:
        calls.append((names[module], module, inputs, output))

    return [
        module.register_forward_hook(hook)
        for module in model.modules()
        if module not in inside_custom
        and (
            hasattr(module, method)
            or isinstance(module, (nn.Conv2d, nn.Linear))
            or (method == "analytic_madds" and hasattr(module, NO_ANALYTIC))
        )
    ]


def layer_madds(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """MAdds of one conv or linear layer from its weight shape and output size."""
    if hasattr(module, "conv_linear_madds"):
        return int(module.conv_linear_madds(inputs[0], output))
    if isinstance(module, nn.Conv2d):
        return conv2d_madds(module.weight.shape, output.shape)
    if isinstance(module, nn.Linear):
        rows = output.numel() // module.out_features
        return fc_madds(rows, module.in_features, module.out_features)
    raise TypeError(f"no MAdds formula for {type(module).__name__}")


def conv2d_madds(
    weight_shape: torch.Size | tuple[int, ...], output_shape: torch.Size | tuple[int, ...]
) -> int:
    """:func:`dynbench.ops.base.conv_madds` from a conv's weight shape."""
    _, cin_per_group, kh, kw = weight_shape
    return conv_madds(tuple(output_shape), cin_per_group, kh, kw)
