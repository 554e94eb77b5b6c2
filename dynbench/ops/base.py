"""What every dynamic operator shares: a fast and a naive path, analytic costs, phases.

Each operator module in this package subclasses :class:`DynamicOp` and provides

* ``forward`` dispatching on ``self.impl`` (``"fast"`` or ``"naive"``): the naive
  path is a per-sample loop written for clarity, the reference the fast path is
  tested against;
* ``analytic_madds(x_shape, out_shape)``: a breakdown in multiply-adds with the
  keys of :data:`dynbench.results.names.MADDS_PARTS`, computed from shapes alone;
* ``weight_count()``: how many weights one image must read (all K kernels for a
  kernel-dynamic operator), the cost MAdds hide at batch 1;
* :func:`phase` scopes named by :data:`dynbench.results.names.PHASES`.

The kernel-mixing operators (CondConv, DY-Conv, ODConv) also share their conv
geometry, their K kernels and the batch-folded per-sample convolution through
:class:`KernelDynamicConv`, so that all of them are timed doing the same things
the same way.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from dynbench.results.names import EXPERTS, MIXED

IMPLS = ("fast", "naive")
_NO_SCOPE = contextlib.nullcontext()
_MARKING = threading.local()  # .off: phase marks switched off in this thread


def phase(name: str) -> contextlib.AbstractContextManager:
    """``record_function(name)`` while a profiler runs, else nothing.

    Entering a ``record_function`` costs about as much as a small op even with no
    profiler attached; every operator marks its phases through this one helper so
    that each pays the same (nothing) when timed and is seen the same way when profiled.
    """
    if torch.autograd._profiler_enabled() and not getattr(_MARKING, "off", False):
        return record_function(name)
    return _NO_SCOPE


@contextlib.contextmanager
def unmarked() -> Iterator[None]:
    """Profile without the phase marks, e.g. beside code that has none: under a profiler
    each mark is an event with a cost of its own, which would count against dynbench."""
    _MARKING.off = True
    try:
        yield
    finally:
        _MARKING.off = False


def conv_madds(
    out_shape: tuple[int, ...], in_per_group: int, kh: int, kw: int | None = None
) -> int:
    """MAdds of a convolution producing ``out_shape`` (N, C, H, W): one per weight per pixel."""
    return math.prod(out_shape) * in_per_group * kh * (kh if kw is None else kw)


def fc_madds(rows: int, in_features: int, out_features: int) -> int:
    """MAdds of a fully connected layer applied to ``rows`` vectors."""
    return rows * in_features * out_features


def conv1x1_on_vectors(z: Tensor, conv: nn.Conv2d) -> Tensor:
    """A 1x1 conv applied to (B, C) vectors as the matrix product it is on a 1x1 map:
    one ``F.linear`` with the conv's weight viewed as a matrix (and its bias)."""
    return F.linear(z, conv.weight.view(conv.out_channels, -1), conv.bias)


def squeeze(x: Tensor, fc: nn.Conv2d, bn: nn.BatchNorm2d | None) -> Tensor:
    """The attention branches' shared start on (B, C, H, W) input: global average pool,
    ``fc`` (a 1x1 conv) as a matrix product, ``bn`` (if any), ReLU; (B, hidden).

    The batch norm runs as the module in training (it updates its statistics) and as one
    functional call in eval. ``adaptive_avg_pool2d`` is the pooling op the MAdds counters
    know (fvcore would skip ``x.mean``).
    """
    b = x.shape[0]
    z = conv1x1_on_vectors(F.adaptive_avg_pool2d(x, 1).view(b, -1), fc)
    if bn is not None and bn.training:
        z = bn(z.view(b, -1, 1, 1)).view(b, -1)
    elif bn is not None:
        z = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return z.relu_()


_THREAD = threading.local()  # the shared workspaces of each thread
# From this size up a per-call kernel is written into the thread's shared buffer; below it,
# into a fresh tensor. glibc maps a freed block of several MiB afresh on the next call (page
# faults on every page); a smaller one it hands back from its heap, and a fresh tensor then
# skips the buffer's lookup, slicing and ``out=`` checks, which at batch 1 cost a small
# layer more than its kernel's arithmetic (reports/released/README.md).
SHARED_FROM_BYTES = 4 << 20


def shares_buffer(shape: tuple[int, ...], like: Tensor) -> bool:
    """Whether a per-call kernel of ``shape`` (dtype of ``like``) goes into the shared buffer."""
    return math.prod(shape) * like.element_size() >= SHARED_FROM_BYTES


def kernel_buffer(slot: str, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
    """Where a per-call kernel of ``shape`` goes (inference only): the thread's shared buffer
    for ``slot`` from :data:`SHARED_FROM_BYTES` up, else None, a fresh tensor (an op's
    ``out=None``).

    The shared buffer is consumed before the forward returns: every operator of the thread
    writes the same memory, which the previous layer's kernel has just left in cache,
    instead of a cold buffer of its own."""
    return _shared_buffer(slot, shape, like) if shares_buffer(shape, like) else None


def _shared_buffer(slot: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """The thread's buffer for ``slot``, grown to the largest request, viewed as ``shape``."""
    pool = getattr(_THREAD, "workspaces", None)
    if pool is None:
        pool = _THREAD.workspaces = {}
    numel = math.prod(shape)
    key = (slot, like.dtype, like.device)
    buffer = pool.get(key)
    if buffer is None or buffer.numel() < numel:
        with torch.inference_mode(False):
            buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
        pool[key] = buffer
    return buffer[:numel].view(shape)


def release_workspaces(model: nn.Module) -> None:
    """Drop this thread's shared kernel buffers and ``model``'s per-layer workspaces.

    Both outlive the call that made them (that is their point) and neither moves with
    ``model.to()``: on a GPU, a measurement that does not drop them leaves the next model
    the previous one's buffers, in its peak memory and in the allocator's free space."""
    _THREAD.workspaces = {}
    for module in model.modules():
        if isinstance(module, DynamicOp):
            module._workspaces = {}


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
        """A buffer of this layer's own, kept between calls for per-call kernels (inference
        only; a kernel consumed within the call goes to :func:`kernel_buffer`).

        A freshly allocated multi-megabyte kernel costs page faults on every call
        (glibc serves it with a new mmap). Reusing one buffer per layer removes them.
        The buffer is always a normal tensor (one created under inference mode could
        not be written by a later call outside it). Consequence: one module must not
        run forward in two threads at once.
        """
        key = (slot, tuple(shape), like.dtype, like.device)
        buffer = self._workspaces.get(key)
        if buffer is None:
            with torch.inference_mode(False):
                buffer = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._workspaces = {k: v for k, v in self._workspaces.items() if k[0] != slot}
            self._workspaces[key] = buffer
        return buffer

    def mix_kernels(self, coefficients: Tensor, kernels: Tensor) -> Tensor:
        """[B, K] coefficients times [K, ...] kernels -> [B, prod(...)], one matmul: into the
        thread's shared buffer from :data:`SHARED_FROM_BYTES` up (inference only), else
        into a fresh tensor."""
        flat = kernels.view(kernels.shape[0], -1)  # the K kernels: a contiguous parameter
        if self.records_graph(coefficients, flat):
            return torch.mm(coefficients, flat)
        out = kernel_buffer("mix", (coefficients.shape[0], flat.shape[1]), flat)
        return torch.mm(coefficients, flat, out=out)

    def scale(self, tensor: Tensor, factor: Tensor, owned: bool) -> Tensor:
        """tensor * factor: in place when ``tensor`` is already this call's own kernel
        (``owned``), else into the shared buffer from :data:`SHARED_FROM_BYTES` up and into a
        new tensor below it; always a new tensor while autograd records."""
        if self.records_graph(tensor, factor):
            return tensor * factor
        if owned:
            return tensor.mul_(factor)
        shape = torch.broadcast_shapes(tensor.shape, factor.shape)
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


class KernelDynamicConv(DynamicOp):
    """A drop-in for ``nn.Conv2d`` whose kernel is mixed per sample from K kernels.

    Holds the conv geometry, the K kernels ``weight`` (K, C_out, C_in / groups, k, k)
    and optional K biases (K, C_out), each kernel initialised as torch initialises
    the static conv it replaces. Subclasses add how the kernels are mixed.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        groups: int,
        num_kernels: int,
        bias: bool,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide {in_channels} and {out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.groups = (
            kernel_size,
            stride,
            padding,
            groups,
        )
        self.num_kernels = num_kernels
        # The fast path's route: None picks by the rule (experts_pay); True / False force the
        # experts / the mixed route. ``route`` is the one the last fast call took.
        self.experts: bool | None = None
        self.route = MIXED
        # experts_pay per (input shape, dtype, on the CPU, memory kept)
        self._experts_by_input: dict[tuple[torch.Size, torch.dtype, bool, bool], bool] = {}
        # one kernel's shape, kept as a plain tuple: the batch-1 conv views each mixed kernel
        # as it, and a parameter's shape is looked up through nn.Module.__getattr__
        self.kernel_shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.empty(num_kernels, *self.kernel_shape))
        self.bias = nn.Parameter(torch.empty(num_kernels, out_channels)) if bias else None
        for i in range(num_kernels):
            nn.init.kaiming_uniform_(self.weight[i], a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0][0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def conv(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """One sample's (or a shared) kernel (C_out, C_in / groups, k, k) on ``x``."""
        return F.conv2d(x, weight, bias, self.stride, self.padding, 1, self.groups)

    def per_sample_conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """Sample i convolved with kernel i: ``weight`` the B kernels, (B, C_out, C_in / groups,
        k, k) or flat (B, C_out C_in / groups k k) as mixed, contiguous; ``bias`` (B, C_out) or
        None. At batch 1 a plain conv; beyond, one grouped conv on the batch-folded input,
        where groups = batch x groups keeps samples apart."""
        batch, cin, height, width = x.shape
        if batch == 1:
            b = None if bias is None else bias.view(-1)
            return self.conv(x, weight.view(self.kernel_shape), b)
        k = self.kernel_size
        out = F.conv2d(
            x.reshape(1, batch * cin, height, width),
            weight.reshape(-1, cin // self.groups, k, k),
            None if bias is None else bias.reshape(-1),
            self.stride,
            self.padding,
            1,
            batch * self.groups,
        )
        return out.view(batch, self.out_channels, *out.shape[-2:])

    def implementation(self) -> str:
        """``naive``, or ``fast/`` plus the route of the last fast call: ``mixed`` (each
        sample's kernel formed, then one batch-folded conv) or ``experts`` (see
        :meth:`experts_conv`)."""
        return self.impl if self.impl == "naive" else f"fast/{self.route}"

    def takes_experts(self, x: Tensor) -> bool:
        """Whether this fast call runs :meth:`experts_conv`: the ``experts`` override, or
        the rule :func:`experts_pay`. Sets :attr:`route` accordingly.

        The rule's answer depends only on the input's shape, its dtype, whether it is on the
        CPU, and whether freed memory stays mapped (:func:`memory_kept`), so it is kept per
        such key and a call pays one dict lookup: every Python call on this path is paid
        once per layer per image, which the 51 small dynamic layers of a MobileNetV2 feel
        most at batch 1."""
        chosen = self.experts
        if chosen is None:
            key = (x.shape, x.dtype, x.is_cpu, _MEMORY["kept"])
            chosen = self._experts_by_input.get(key)
            if chosen is None:
                chosen = self._experts_by_input[key] = self._experts_pay(x, key[-1])
        self.set_route(EXPERTS if chosen else MIXED)
        return chosen

    def _experts_pay(self, x: Tensor, kept: bool) -> bool:
        """:func:`experts_pay` at this layer's shapes for input ``x``, whose dtype sizes the
        batch's kernels and whose device decides whether the CPU rule applies."""
        batch, _, height, width = x.shape
        out_h, out_w = self.output_size(height, width)
        return experts_pay(
            batch,
            self.num_kernels,
            out_h * out_w,
            math.prod(self.kernel_shape),
            math.prod(self.kernel_shape[1:]),
            kept,
            element_size=x.element_size(),
            device_type=x.device.type,
        )

    def set_route(self, route: str) -> None:
        """Record the route of this call; assigned only on a change (``nn.Module``'s
        ``__setattr__`` checks parameters, buffers and submodules on every assignment)."""
        if route != self.route:
            self.route = route

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H', W') of this conv's output on an ``height`` x ``width`` input."""
        k, s, p = self.kernel_size, self.stride, self.padding
        return (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1

    def expert_kernels(self) -> Tensor:
        """The K kernels as one conv weight (K C_out, C_in / groups, k, k) whose output
        channels run (group, kernel, channel of the group), the order a grouped conv needs:
        a view for groups = 1, a copy (into a workspace outside autograd) otherwise."""
        n, cout, cin_g, k, _ = self.weight.shape
        g = self.groups
        if g == 1:
            return self.weight.view(n * cout, cin_g, k, k)
        grouped = self.weight.view(n, g, cout // g, cin_g, k, k).transpose(0, 1)
        if self.records_graph(self.weight):
            return grouped.reshape(n * cout, cin_g, k, k)
        out = self.workspace("experts", (g, n, cout // g, cin_g, k, k), self.weight)
        return out.copy_(grouped).view(n * cout, cin_g, k, k)

    def experts_conv(self, x: Tensor, coefficients: Tensor) -> Tensor:
        """y_b = sum_k c[b, k] (W_k * x_b) + sum_k c[b, k] b_k, the same function as
        :meth:`mixed_conv` computed the other way round: the K kernels run as one dense
        conv with K C_out output channels over the whole batch, and each sample's K outputs
        are mixed with its coefficients (one batched matmul). No per-sample kernel is
        built; the conv does K times the MAdds (the analytic count stays the papers'
        dataflow's, as for every route)."""
        n, cout = self.num_kernels, self.out_channels
        g = self.groups
        with phase("conv"):
            out = F.conv2d(x, self.expert_kernels(), None, self.stride, self.padding, 1, g)
        with phase("aggregation"):
            batch, _, height, width = out.shape
            # a view of a contiguous output; a copy of a channels-last one
            stacked = out.reshape(batch, g, n, (cout // g) * height * width)
            mixed = torch.matmul(coefficients.view(batch, 1, 1, n), stacked)
            y = mixed.view(batch, cout, height, width)
            if self.bias is not None:
                y = y + (coefficients @ self.bias)[:, :, None, None]
        return y

    def mixed_conv(self, x: Tensor, coefficients: Tensor) -> Tensor:
        """y_i = (sum_k c[i, k] W_k) * x_i: the batch's kernels in one matmul and one conv, or
        on the naive path each sample's kernel built in a loop and applied on its own."""
        if self.impl == "naive":
            outputs = []
            for i in range(x.shape[0]):
                with phase("aggregation"):
                    weight, bias = self.one_sample(coefficients[i], self.weight, self.bias)
                with phase("conv"):
                    outputs.append(self.conv(x[i : i + 1], weight, bias))
            return torch.cat(outputs)
        if self.takes_experts(x):
            return self.experts_conv(x, coefficients)
        with phase("aggregation"):  # each sample's kernel, sum_k c[i, k] W_k, and bias
            kernels = self.mix_kernels(coefficients, self.weight)
            bias = None if self.bias is None else coefficients @ self.bias
        with phase("conv"):
            return self.per_sample_conv(x, kernels, bias)

    def materialised_count(self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        """The batch's mixed kernels (and biases) on the naive and mixed routes; nothing on
        the experts route, which mixes outputs instead."""
        if self.impl == "fast" and self.route == EXPERTS:
            return 0
        bias = 0 if self.bias is None else self.out_channels
        return x_shape[0] * (math.prod(self.kernel_shape) + bias)

    def mixing_madds(self, batch: int) -> dict[str, int]:
        """The conv-free parts of :meth:`mixed_conv`: K kernels (and biases) per sample."""
        kernel = self.weight[0].numel() + (0 if self.bias is None else self.out_channels)
        return {"aggregation": batch * self.num_kernels * kernel, "feature_scale": 0}

    def conv_part_madds(self, out_shape: tuple[int, ...]) -> int:
        """The convolution itself, as a static conv of this shape costs."""
        return conv_madds(out_shape, self.in_channels // self.groups, self.kernel_size)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
            f"bias={self.bias is not None}, num_kernels={self.num_kernels}"
        )


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


# The experts route's rule (experts_pay), set from the measured crossovers of the two routes
# on the layer shapes of the registered models, in fp32 on the CPU; the measurements are in
# reports/batch-sweep/routes.md and, with freed memory kept mapped, routes-pinned.md.
# KERNEL_PASS_MADDS: what forming and streaming back one element of a per-sample kernel costs
# the mixed route, in multiply-adds. KERNELS_OUT_OF_CACHE: glibc's mmap ceiling in bytes, the
# size of the batch's kernels from which the mixed route's buffers are mapped afresh on every
# call under glibc's default policy. MIN_EXPERTS_DEPTH: the per-sample GEMM depth below which
# the mixed route's grouped conv stays the faster one.
KERNEL_PASS_MADDS = 256
KERNELS_OUT_OF_CACHE = 32 << 20
MIN_EXPERTS_DEPTH = 512
# Whether freed memory stays mapped in this process (dynbench.measure.allocator.pin): then
# the experts route never pays (reports/batch-sweep/routes-pinned.md).
_MEMORY = {"kept": False}


def memory_kept(kept: bool = True) -> None:
    """Tell the route rule whether freed memory stays mapped from now on (:func:`experts_pay`)."""
    _MEMORY["kept"] = kept


def experts_pay(
    batch: int,
    num_kernels: int,
    positions: int,
    kernel_elements: int,
    depth: int,
    kept: bool = False,
    element_size: int = 4,
    device_type: str = "cpu",
) -> bool:
    """Whether :meth:`KernelDynamicConv.experts_conv` beats the mixed route at this shape.

    Per kernel element and sample, the mixed route computes P MAdds (P output positions)
    plus the K of forming the kernel, and pays for writing that kernel and reading it
    back; the experts route computes K P and forms nothing. So the experts route pays
    only when (K - 1) P is below the cost of that kernel pass (``KERNEL_PASS_MADDS``),
    which is large only once the batch's kernels (batch x ``kernel_elements`` x
    ``element_size`` bytes) reach ``KERNELS_OUT_OF_CACHE``, and only for per-sample GEMMs
    at least ``MIN_EXPERTS_DEPTH`` deep (``depth`` = C_in / groups x k x k). Depthwise
    and early, high-resolution layers never qualify. At batch <= K the experts route
    does more work for no saving: never.

    The size threshold is glibc's mmap ceiling, a number of bytes: past it, the mixed
    route's batch of kernels is served by fresh mappings that fault on every call, the
    saving the experts route buys. That is a property of the CPU's allocator: on any other
    device (``device_type``) nothing was measured and the rule says never. With freed memory
    kept mapped (``kept``) the mixed route was the faster on every measured shape and batch
    (reports/batch-sweep/routes-pinned.md): never.
    """
    return (
        device_type == "cpu"
        and not kept
        and batch > num_kernels
        and (num_kernels - 1) * positions <= KERNEL_PASS_MADDS
        and batch * kernel_elements * element_size >= KERNELS_OUT_OF_CACHE
        and depth >= MIN_EXPERTS_DEPTH
    )


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
