"""What every dynamic operator shares: a fast and a naive path, analytic costs, phases.

Each operator module in this package subclasses :class:`DynamicOp` and provides

* ``forward`` dispatching on ``self.impl`` (``"fast"`` or ``"naive"``): the naive
  path is a per-sample loop written for clarity, the reference the fast path is
  tested against;
* ``analytic_madds(x_shape, out_shape)``: a breakdown in multiply-adds with the
  keys of :data:`MADDS_PARTS`, computed from shapes alone;
* ``weight_count()``: how many weights one image must read (all K kernels for a
  kernel-dynamic operator), the cost MAdds hide at batch 1;
* ``torch.profiler.record_function`` scopes named by :data:`PHASES`.
"""

from __future__ import annotations

import math

from torch import nn

IMPLS = ("fast", "naive")
PHASES = ("attention", "aggregation", "conv")
# conv: the convolution itself, as a static conv of this shape costs;
# attention: the layers of the attention/routing branch (pooling excluded);
# aggregation: building each sample's kernel from the K kernels and attentions;
# feature_scale: attentions multiplied onto feature maps instead of onto weights.
MADDS_PARTS = ("conv", "attention", "aggregation", "feature_scale")


class DynamicOp(nn.Module):
    """Base class of the dynamic operators (not usable on its own)."""

    operator = "dynamic"

    def __init__(self) -> None:
        super().__init__()
        self.impl = "fast"

    def set_impl(self, impl: str) -> None:
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.impl = impl

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        raise NotImplementedError

    def weight_count(self) -> int:
        """Weights one image reads; by default every parameter of the operator."""
        return sum(p.numel() for p in self.parameters())

    def conv_linear_madds(self, x, out) -> int:
        """The papers' convention: conv and FC layers only (conv + attention branch)."""
        parts = self.analytic_madds(tuple(x.shape), tuple(out.shape))
        return parts["conv"] + parts["attention"]


def set_impl(model: nn.Module, impl: str) -> nn.Module:
    """Switch every dynamic operator of ``model`` to the fast or naive path."""
    for module in model.modules():
        if isinstance(module, DynamicOp):
            module.set_impl(impl)
    return model


def conv_output_madds(out_shape: tuple[int, ...], in_per_group: int, kernel: int) -> int:
    """MAdds of a convolution producing ``out_shape`` (N, C, H, W)."""
    return math.prod(out_shape) * in_per_group * kernel * kernel


def fc_madds(batch: int, in_features: int, out_features: int) -> int:
    return batch * in_features * out_features
