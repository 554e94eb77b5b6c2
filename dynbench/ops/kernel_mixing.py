"""The kernel-mixing convs' common part (CondConv, DY-Conv, ODConv, CGC): a drop-in for
``nn.Conv2d`` whose kernel is mixed per sample from K kernels, with its two fast routes
(:mod:`dynbench.ops.experts_route`) and the batch-folded per-sample convolution, so that
all of them are timed doing the same things the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.analytic_madds import conv_madds
from dynbench.ops.base import DynamicOp, set_on_change
from dynbench.ops.experts_route import RouteSetting, experts_pay
from dynbench.ops.phases import phase
from dynbench.results.names import EXPERTS, MIXED


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
        # what the rule is told about the process (set_route_setting; the runner's)
        self.route_setting = RouteSetting()
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
        CPU, and whether freed memory stays mapped (:attr:`route_setting`), so it is kept per
        such key and a call pays one dict lookup: every Python call on this path is paid
        once per layer per image, which the 51 small dynamic layers of a MobileNetV2 feel
        most at batch 1."""
        chosen = self.experts
        if chosen is None:
            key = (x.shape, x.dtype, x.is_cpu, self.route_setting.memory_kept)
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
        """Record the route of this call (:func:`~dynbench.ops.base.set_on_change`)."""
        set_on_change(self, "route", route)

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


def set_route_setting(model: nn.Module, setting: RouteSetting) -> nn.Module:
    """Give every kernel-mixing conv of ``model`` the runner's :class:`RouteSetting`."""
    for module in model.modules():
        if isinstance(module, KernelDynamicConv):
            module.route_setting = setting
    return model
