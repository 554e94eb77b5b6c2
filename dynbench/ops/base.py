"""What every dynamic operator shares: a fast and a naive path, analytic costs, phases.

Each operator module in this package subclasses :class:`DynamicOp` and provides

* ``forward`` dispatching on ``self.impl`` (``"fast"`` or ``"naive"``): the naive
  path is a per-sample loop written for clarity, the reference the fast path is
  tested against;
* ``analytic_madds(x_shape, out_shape)``: a breakdown in multiply-adds with the
  keys of :data:`dynbench.results.names.MADDS_PARTS`, computed from shapes alone
  (:mod:`dynbench.ops.analytic_madds`);
* ``weight_count()``: how many weights one image must read (all K kernels for a
  kernel-dynamic operator), the cost MAdds hide at batch 1;
* :func:`~dynbench.ops.phases.phase` scopes named by :data:`dynbench.results.names.PHASES`.

The kernel-mixing operators (CondConv, DY-Conv, ODConv, CGC) also share their conv
geometry, their K kernels, the batch-folded per-sample convolution and the route rule
through :class:`dynbench.ops.kernel_mixing.KernelDynamicConv`. Per-call kernels go to the
buffers of :mod:`dynbench.ops.buffers`.

The helpers of those modules that callers outside this package use are importable from
here as well (``__all__``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dynbench.ops.analytic_madds import conv_madds, fc_madds
from dynbench.ops.buffers import (
    drop_shared_buffers,
    kernel_buffer,
    layer_workspace,
    shares_buffer,
)
from dynbench.ops.experts_route import experts_pay
from dynbench.ops.phases import phase, unmarked
from dynbench.ops.squeeze import conv1x1_on_vectors, squeeze
from dynbench.results.names import EXPERTS, MIXED

__all__ = [
    "EXPERTS",
    "IMPLS",
    "MIXED",
    "AttentionTemperature",
    "DynamicOp",
    "conv1x1_on_vectors",
    "conv_madds",
    "experts_pay",
    "fc_madds",
    "implementations",
    "phase",
    "release_workspaces",
    "set_impl",
    "set_on_change",
    "squeeze",
    "unmarked",
]

IMPLS = ("fast", "naive")


def release_workspaces(model: nn.Module) -> None:
    """Drop this thread's shared kernel buffers and ``model``'s per-layer workspaces.

    Both outlive the call that made them (that is their point) and neither moves with
    ``model.to()``: on a GPU, a measurement that does not drop them leaves the next model
    the previous one's buffers, in its peak memory and in the allocator's free space."""
    drop_shared_buffers()
    for module in model.modules():
        if isinstance(module, DynamicOp):
            module._workspaces = {}


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The shape two broadcastable shapes broadcast to (the op that uses it checks that they
    are). ``torch.broadcast_shapes`` answers the same through its symbolic-shape machinery,
    which at batch 1 cost a kernel's scaling more than the multiplication itself and
    imports sympy on its first call."""
    if len(a) < len(b):
        a, b = b, a
    b = (1,) * (len(a) - len(b)) + tuple(b)
    return tuple(x if y == 1 else y for x, y in zip(a, b, strict=True))


def set_on_change(module: nn.Module, name: str, value: object) -> None:
    """``module.<name> = value``, assigned only where it differs: ``nn.Module.__setattr__``
    looks through parameters, buffers and submodules on every assignment, a cost that a
    per-call record (the route taken, whether a compiled loop ran) should not pay on every
    call."""
    if getattr(module, name) != value:
        setattr(module, name, value)


class DynamicOp(nn.Module):
    """Base class of the dynamic operators (not usable on its own)."""

    operator = "dynamic"

    def __init__(self) -> None:
        super().__init__()
        self.impl = "fast"
        self._workspaces: dict[tuple, Tensor] = {}

    def records_graph(self, *tensors: Tensor) -> bool:
        """Whether autograd records this call (then no buffer or constant is reused)."""
        return torch.is_grad_enabled() and (
            any(t.requires_grad for t in tensors) or any(p.requires_grad for p in self.parameters())
        )

    def workspace(self, slot: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A buffer of this layer's own for ``slot``, kept between calls for per-call kernels
        (inference only): :func:`dynbench.ops.buffers.layer_workspace`."""
        return layer_workspace(self._workspaces, slot, shape, like)

    def mix_kernels(self, coefficients: Tensor, kernels: Tensor) -> Tensor:
        """[B, K] coefficients times [K, ...] kernels -> [B, prod(...)], one matmul: where
        :func:`~dynbench.ops.buffers.kernel_buffer` says in inference (the thread's shared
        buffer for a large kernel, else a fresh tensor), a fresh tensor in training."""
        flat = kernels.view(kernels.shape[0], -1)  # the K kernels: a contiguous parameter
        if self.records_graph(coefficients, flat):
            return torch.mm(coefficients, flat)
        out = kernel_buffer("mix", (coefficients.shape[0], flat.shape[1]), flat)
        return torch.mm(coefficients, flat, out=out)

    def scale(self, tensor: Tensor, factor: Tensor, owned: bool) -> Tensor:
        """tensor * factor: in place when ``tensor`` is already this call's own kernel
        (``owned``), else where :func:`~dynbench.ops.buffers.kernel_buffer` says (the shared
        buffer for a large kernel, else a new tensor); always a new tensor while autograd
        records."""
        if self.records_graph(tensor, factor):
            return tensor * factor
        if owned:
            return tensor.mul_(factor)
        if not shares_buffer((tensor.numel(), factor.numel()), tensor):
            return tensor * factor  # no larger than this bound: a fresh tensor, no shape asked
        shape = broadcast_shape(tensor.shape, factor.shape)
        return torch.mul(tensor, factor, out=kernel_buffer("scaled", shape, tensor))

    def set_impl(self, impl: str) -> None:
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.impl = impl

    @staticmethod
    def one_sample(
        coefficients: Tensor, weight: Tensor, bias: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """The naive paths' kernel of one sample: sum_k c_k W_k (and sum_k c_k b_k), a loop."""
        mixed = sum(coefficients[k] * weight[k] for k in range(weight.shape[0]))
        if bias is None:
            return mixed, None
        return mixed, sum(coefficients[k] * bias[k] for k in range(bias.shape[0]))

    def implementation(self) -> str:
        """What the last forward ran: ``impl``, plus any eval-time route an operator took."""
        return self.impl

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        raise NotImplementedError

    def weight_count(self) -> int:
        """Weights one image reads; by default every parameter of the operator."""
        return sum(p.numel() for p in self.parameters())

    def materialised_count(self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        """Elements of the per-call intermediates the route of the last call wrote and read
        back beyond the layer's input and output (a per-sample kernel, an unfolded input);
        by default none. The roofline counts each twice (written, then read)."""
        return 0

    def static_weight_count(self) -> int:
        """Weights the static layer this operator replaces would read."""
        if hasattr(self, "in_features"):
            return self.in_features * self.out_features
        k = self.kernel_size
        return self.out_channels * (self.in_channels // self.groups) * k * k

    def conv_linear_madds(self, x: Tensor, out: Tensor) -> int:
        """The papers' convention: conv and FC layers only (conv + attention branch)."""
        parts = self.analytic_madds(tuple(x.shape), tuple(out.shape))
        return parts["conv"] + parts["attention"]


def set_impl(model: nn.Module, impl: str) -> nn.Module:
    """Switch every dynamic operator of ``model`` to the fast or naive path."""
    for module in model.modules():
        if isinstance(module, DynamicOp):
            module.set_impl(impl)
    return model


def implementations(model: nn.Module) -> dict[str, int]:
    """How many dynamic operators ran each implementation in the model's last forward."""
    counts: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, DynamicOp):
            name = module.implementation()
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


class AttentionTemperature:
    """``temperature`` on an operator whose ``attention`` branch has one (DY-Conv's softmax,
    ODConv's heads), where a training schedule anneals it. A mixin rather than a property
    of :class:`KernelDynamicConv`: CondConv's sigmoid routing and CGC's gate have no
    temperature, and asking them for one must say so, not that they lack an attention."""

    attention: nn.Module

    @property
    def temperature(self) -> float:
        """The softmax/sigmoid temperature of the operator's attention branch."""
        return self.attention.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self.attention.temperature = value
