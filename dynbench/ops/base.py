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

import torch
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
        self._workspaces: dict[tuple, torch.Tensor] = {}

    def _reuse_workspace(self, *tensors: torch.Tensor) -> bool:
        """Whether kernels may be built into a reused buffer: only when no graph is recorded."""
        return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))

    def workspace(self, slot: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A buffer kept between calls for per-call kernels (inference only).

        A freshly allocated multi-megabyte kernel costs page faults on every call
        (glibc serves it with a new mmap): on one CPU thread that tripled the time
        of a 512x512 3x3 conv at 7x7. Reusing one buffer per layer removes it.
        Consequence: one module must not run forward in two threads at once.
        """
        # a buffer made under inference_mode cannot be written outside it, and vice versa
        key = (slot, tuple(shape), like.dtype, like.device, torch.is_inference_mode_enabled())
        buffer = self._workspaces.get(key)
        if buffer is None:
            buffer = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._workspaces = {k: v for k, v in self._workspaces.items() if k[0] != slot}
            self._workspaces[key] = buffer
        return buffer

    def mix_kernels(self, coefficients: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """[B, K] coefficients times [K, ...] kernels -> [B, prod(...)], one matmul."""
        flat = kernels.reshape(kernels.shape[0], -1)
        if not self._reuse_workspace(coefficients, flat):
            return coefficients @ flat
        out = self.workspace("mix", (coefficients.shape[0], flat.shape[1]), flat)
        return torch.matmul(coefficients, flat, out=out)

    def scale(self, tensor: torch.Tensor, factor: torch.Tensor, owned: bool) -> torch.Tensor:
        """tensor * factor: in place when ``tensor`` is already this op's workspace, else
        into a workspace; a new tensor only while autograd records."""
        if not self._reuse_workspace(tensor, factor):
            return tensor * factor
        if owned:
            return tensor.mul_(factor)
        shape = torch.broadcast_shapes(tensor.shape, factor.shape)
        return torch.mul(tensor, factor, out=self.workspace("scaled", shape, tensor))

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

    def static_weight_count(self) -> int:
        """Weights the static layer this operator replaces would read."""
        if hasattr(self, "in_features"):
            return self.in_features * self.out_features
        k = self.kernel_size
        return self.out_channels * (self.in_channels // self.groups) * k * k

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
