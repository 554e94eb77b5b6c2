"""A roofline lower bound of batch-1 latency: what each layer must cost on this machine.

A layer cannot finish before the machine has done its multiply-adds at its best GEMM
rate, nor before it has moved the bytes it must touch at the streaming read bandwidth:
its weights (all K kernels of a kernel-dynamic operator, ``weight_count()``), its
input and its output, and for a dynamic operator the intermediates its route writes and
reads back (``materialised_count()``: the per-sample mixed kernel, ODConv's unfolded
input), so that a route that forms a kernel is compared with a floor that pays for it.
The floor of a model is the sum over its layers of the larger of the two. Layers are the
conv and linear layers and the dynamic operators as whole units (their attention branch
and kernel mixing included, as ``analytic_madds`` counts them); batch norms, activations,
pooling and residual adds are left out because a compiler may fuse them, so the floor
holds for any implementation, not only this one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from dynbench.measure.shape_counters import layer_madds, leaf_calls
from dynbench.ops.base import DynamicOp


@dataclass(frozen=True)
class LayerWork:
    """One layer call at batch 1: its MAdds and the bytes it must read or write."""

    layer: str
    type: str
    madds: int
    weight_bytes: int
    activation_bytes: int  # input and output
    # a dynamic operator's per-call intermediates (mixed kernel, unfolded input), written
    # and read back: twice their size
    materialised_bytes: int = 0

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes + self.materialised_bytes

    def as_json(self) -> dict:
        return asdict(self)


def layer_work(model: nn.Module, x: torch.Tensor) -> list[LayerWork]:
    """Every conv, linear and dynamic-operator call of one forward of ``model`` on ``x``."""
    model.eval()
    return [
        _work(name, module, inputs, output)
        for name, module, inputs, output in leaf_calls(model, x, "analytic_madds")
    ]


def _work(name: str, module: nn.Module, inputs: tuple, output: torch.Tensor) -> LayerWork:
    x = inputs[0]
    if hasattr(module, "analytic_madds"):
        madds = sum(module.analytic_madds(tuple(x.shape), tuple(output.shape)).values())
        weights = (
            module.weight_count()
            if isinstance(module, DynamicOp)
            else sum(p.numel() for p in module.parameters())
        )
    else:
        madds = layer_madds(module, inputs, output)
        weights = sum(p.numel() for p in module.parameters())
    element = next((p.element_size() for p in module.parameters()), x.element_size())
    materialised = 0
    if isinstance(module, DynamicOp):
        materialised = 2 * module.materialised_count(tuple(x.shape), tuple(output.shape))
    return LayerWork(
        layer=name,
        type=type(module).__name__,
        madds=int(madds),
        weight_bytes=int(weights * element),
        activation_bytes=int(x.numel() * x.element_size() + output.numel() * output.element_size()),
        materialised_bytes=int(materialised * element),
    )


def layer_floor_s(madds: float, nbytes: float, madds_per_s: float, bytes_per_s: float) -> float:
    """One layer's lower bound in seconds: max(MAdds / GEMM rate, bytes / bandwidth)."""
    return max(madds / madds_per_s, nbytes / bytes_per_s)


def layer_bytes(layer: dict) -> int:
    """A stored layer's bytes (:meth:`LayerWork.as_json`); a store written before the
    materialised intermediates were counted has none."""
    return layer["weight_bytes"] + layer["activation_bytes"] + layer.get("materialised_bytes", 0)


def floor_ms(layers: list[dict], madds_per_s: float, bytes_per_s: float) -> float:
    """A model's floor in ms: the sum of its layers' bounds (``layers`` as stored:
    :meth:`LayerWork.as_json` dicts)."""
    return 1e3 * sum(
        layer_floor_s(
            layer["madds"],
            layer_bytes(layer),
            madds_per_s,
            bytes_per_s,
        )
        for layer in layers
    )
