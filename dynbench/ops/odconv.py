"""ODConv: omni-dimensional dynamic convolution (Li, Zhou & Yao, ICLR 2022).

The kernel of sample x is (paper Eq. 2)

    W(x) = sum_i a_w,i * a_f,i * a_c,i * a_s,i * W_i,   y = W(x) * x

with four attentions from one squeeze branch: a_s over the k x k spatial
positions, a_c over input channels, a_f over output filters, and a_w over the n
kernels. The branch is GAP -> 1x1 conv (C_in -> max(int(C_in * r), 16), no
bias) -> BN -> ReLU -> four 1x1 heads; the spatial, channel and filter heads use
sigmoid(z / T), the kernel head softmax(z / T). As in the released code a head
is left out where it has nothing to do: the filter head for depthwise convs,
the spatial head for 1x1 kernels, the kernel head when n = 1 (its attention is
then the constant 1). The paper's attention-type ablation leaves heads out by
choice: ``attentions`` names the ones a layer has (all four by default), and a
missing attention is the constant 1.

Because a_c and a_f are per channel, each can be applied either to the weights
or to the feature map with the same result; at batch 1 the fast path picks the
smaller side per layer and builds a single kernel with one contraction over the n
kernels; beyond batch 1 it scales the feature maps, leaving the batch's kernels as
mixed. The naive path builds W(x) explicitly for each sample.

a_s scales the k x k kernel positions, which on the feature-map side means the
rows of the unfolded input: the input route (:meth:`ODConv2d._forward_input_side`)
unfolds the input, scales its rows by a_s x a_c, multiplies by the (mixed, for
n > 1) kernels and scales the output by a_f, so that a layer with one kernel never
writes a per-sample kernel. Its extra traffic grows with C_in k k H' W', the
kernel route's with C_out C_in k k, so :func:`input_side_pays` picks per layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops import compiled_kernel, compiled_unfold
from dynbench.ops.base import EXPERTS, MIXED, AttentionTemperature, phase, set_on_change
from dynbench.ops.kernel_mixing import KernelDynamicConv
from dynbench.ops.odconv_attention import (
    ALL_ATTENTIONS,
    CHANNEL,
    FILTER,
    KERNEL,
    SPATIAL,
    ODConvAttention,
)

# the attentions' names are the operator's vocabulary: importable from here as before
__all__ = ["ALL_ATTENTIONS", "CHANNEL", "COMPILED", "COMPILED_KERNEL", "COMPILED_UNFOLD"]
__all__ += ["FILTER", "INPUT", "KERNEL", "SPATIAL"]
__all__ += ["ODConv2d", "ODConvAttention", "input_side_pays"]

# The input route's name in ``implementation()`` (fast/input).
INPUT = "input"
# What ``implementation()`` appends where the attention branch ran compiled, and where the
# mixed route's kernel did.
COMPILED = "compiled-attention"
COMPILED_KERNEL = "compiled-kernel"
COMPILED_UNFOLD = "compiled-unfold"  # the input route's unfold
# input_side_pays: the input route is taken when a sample's output channels are at least
# this many times its output positions, i.e. when the kernel the mixed route would write
# (C_out C_in k k) is that many times the unfolded input (C_in k k H' W'). Unfolding
# (im2col) and the GEMM on the unfolded rows cost more per element than the conv's own
# kernel pass; the measured crossover on the registered models' layers (ResNet 3x3 layers,
# fp32, 1 thread) lies between C_out / (H' W') = 1.3, where the input route lost, and
# 10.4, where it won; 4 sits between them.
INPUT_SIDE_MIN_RATIO = 4


class ODConv2d(AttentionTemperature, KernelDynamicConv):
    """Drop-in for ``nn.Conv2d`` (no bias) with ODConv's four attentions over n kernels."""

    operator = "odconv"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        num_kernels: int = 4,
        reduction: float = 1 / 16,
        temperature: float = 1.0,
        attentions: frozenset[str] = ALL_ATTENTIONS,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, groups, num_kernels, False
        )
        self.attention = ODConvAttention(
            in_channels,
            out_channels,
            kernel_size,
            groups,
            num_kernels,
            reduction,
            temperature=temperature,
            attentions=attentions,
        )
        for i in range(num_kernels):  # the released code's initialisation
            nn.init.kaiming_normal_(self.weight[i], mode="fan_out", nonlinearity="relu")
        # The input route for layers with a spatial attention: None picks by the rule
        # (input_side_pays), True / False force it / the kernel routes.
        self.input_side: bool | None = None
        self._input_side_by_input: dict[torch.Size, bool] = {}
        # weight_sides per input shape
        self._sides_by_input: dict[torch.Size, tuple[bool, bool]] = {}
        self.kernel_compiled = False  # whether the last mixed-route kernel ran compiled
        self.unfold_compiled = False  # whether the last input route's unfold ran compiled

    def forward(self, x: Tensor) -> Tensor:
        if self.impl == "naive":
            with phase("attention"):
                channel, filt, spatial, kernel = self.attention.reference(x)
            return self._forward_naive(x, channel, filt, spatial, kernel)
        with phase("attention"):
            channel, filt, spatial, kernel = self.attention(x)
        return self._forward_fast(x, channel, filt, spatial, kernel)

    def implementation(self) -> str:
        """The route of the last call (:meth:`KernelDynamicConv.implementation`), plus
        ``+compiled-kernel`` where the mixed route's kernel came from its compiled pass
        (:mod:`dynbench.ops.compiled_kernel`), ``+compiled-unfold`` where the input route's
        scaled unfold did (:mod:`dynbench.ops.compiled_unfold`), and ``+compiled-attention``
        where the attention branch ran compiled (:mod:`dynbench.ops.compiled_attention`)."""
        name = super().implementation()
        if self.impl == "fast" and self.route == MIXED and self.kernel_compiled:
            name += f"+{COMPILED_KERNEL}"
        if self.impl == "fast" and self.route == INPUT and self.unfold_compiled:
            name += f"+{COMPILED_UNFOLD}"
        return f"{name}+{COMPILED}" if self.impl == "fast" and self.attention.compiled else name

    def takes_input_side(self, x: Tensor) -> bool:
        """Whether a call with a spatial attention runs :meth:`_forward_input_side`: the
        ``input_side`` override, or :func:`input_side_pays` at this layer's shapes (kept per
        input shape, like the experts rule's answer)."""
        chosen = self.input_side
        if chosen is None:
            chosen = self._input_side_by_input.get(x.shape)
            if chosen is None:
                out_h, out_w = self.output_size(*x.shape[-2:])
                chosen = input_side_pays(self.out_channels, out_h * out_w, self.groups)
                self._input_side_by_input[x.shape] = chosen
        return chosen

    def _forward_fast(self, x, channel, filt, spatial, kernel) -> Tensor:
        if spatial is None:
            if kernel is not None and self.takes_experts(x):
                return self._forward_experts(x, channel, filt, kernel)
        elif self.takes_input_side(x):
            self.set_route(INPUT)
            return self._forward_input_side(x, channel, filt, spatial, kernel)
        self.set_route(MIXED)
        b = x.shape[0]
        sides = self._sides_by_input.get(x.shape)
        if sides is None:
            sides = self._sides_by_input[x.shape] = self.weight_sides(x.shape)
        channel_on_weight, filter_on_weight = sides
        with phase("aggregation"):
            weight = self._kernel(
                kernel,
                spatial,
                channel if channel_on_weight else None,
                filt if filter_on_weight else None,
            )
            if channel is not None and not channel_on_weight:
                x = x * channel.view(b, -1, 1, 1)
        with phase("conv"):
            if weight.shape[0] == 1:  # one kernel for the whole batch
                out = self.conv(x, weight[0])
            else:
                out = self.per_sample_conv(x, weight, None)
        if filt is not None and not filter_on_weight:
            with phase("aggregation"):
                out = out * filt.view(b, -1, 1, 1)
        return out

    def _kernel(self, kernel, spatial, channel, filt) -> Tensor:
        """The mixed route's (B or 1, C_out, C_in / g, k, k) kernels: the n kernels mixed by
        a_w and scaled by the attentions given (a_c, a_f where :meth:`weight_sides` puts them
        on the kernel). In one compiled pass where it applies
        (:mod:`dynbench.ops.compiled_kernel`; :attr:`kernel_compiled` says whether it ran),
        else a matmul over the n kernels and at most two scaling passes; the static kernel
        itself where there is nothing to mix or scale."""
        ran = False
        if kernel is None and spatial is None and channel is None and filt is None:
            weight = self.weight[:1]
        else:
            weight = compiled_kernel.scaled_kernel(
                self.weight, kernel, spatial, channel, filt, self.groups
            )
            ran = weight is not None
        set_on_change(self, "kernel_compiled", ran)
        if weight is not None:
            return weight
        owned = kernel is not None
        if owned:
            # sum_i a_w,i W_i for each sample: one matmul over the n kernels
            weight = self.mix_kernels(kernel, self.weight).view(-1, *self.kernel_shape)
        else:
            weight = self.weight[:1]
        for factor in self.kernel_factors(channel, filt, spatial):
            weight = self.scale(weight, factor, owned)
            owned = True
        return weight

    def weight_sides(self, x_shape: tuple[int, ...]) -> tuple[bool, bool]:
        """Whether the mixed route applies a_c, a_f on the kernel (else on the feature map)
        for inputs of ``x_shape``: at batch 1, each where the kernel is smaller than the map it
        would otherwise scale (the input for a_c, the output for a_f); beyond batch 1 never,
        since a per-sample kernel per attention would be written."""
        b, cin, h, w = x_shape
        att = self.attention
        weight_size = math.prod(self.kernel_shape)
        out_hw = math.prod(self.output_size(h, w))
        channel = b == 1 and att.channel_fc is not None and weight_size < cin * h * w
        filt = b == 1 and att.filter_fc is not None and weight_size < self.out_channels * out_hw
        return channel, filt

    def kernel_factors(self, channel, filt, spatial) -> list[Tensor]:
        """The attentions that scale the mixed route's kernel, as factors that broadcast over
        the (B, C_out, C_in / g, k, k) kernels: a_s per position and, at batch 1, a_c per
        input channel and a_f per filter where :meth:`weight_sides` puts them on the kernel.
        At most two: all but the largest are multiplied together first (a small product),
        so that the kernel is rewritten at most twice, not once per attention."""
        cout, cin_g, k, _ = self.kernel_shape
        g = self.groups
        factors = []
        if spatial is not None:
            factors.append(spatial.view(-1, 1, 1, k, k))
        if channel is not None:
            if g == 1:  # every filter sees all input channels: a broadcast, no copy
                factors.append(channel.view(1, 1, cin_g, 1, 1))
            else:  # input channel c of group gi sits at filters gi*cout/g.., column c % cin_g
                per_filter = channel.view(1, g, 1, cin_g).expand(1, g, cout // g, cin_g)
                factors.append(per_filter.reshape(1, cout, cin_g, 1, 1))
        if filt is not None:
            factors.append(filt.view(1, cout, 1, 1, 1))
        if len(factors) < 3:
            return factors
        factors.sort(key=Tensor.numel)
        return [factors[0] * factors[1], factors[2]]

    def _forward_input_side(self, x, channel, filt, spatial, kernel) -> Tensor:
        """y = a_f (W_mix * (a_s x a_c) unfold(x)): the input unfolded into its k k C_in
        rows per output position, each row scaled by its position's a_s times its channel's
        a_c, then one matrix product with the kernels (the static kernel for n = 1, read
        as it is; the n kernels' per-sample mix otherwise), and the output scaled by a_f.
        No per-sample kernel is written for n = 1 and none is scaled for n > 1."""
        b, cin, h, w = x.shape
        g, cout, k = self.groups, self.out_channels, self.kernel_size
        out_h, out_w = self.output_size(h, w)
        positions, rows = out_h * out_w, cin // g * k * k
        with phase("aggregation"):
            # (b, cin k k, positions), each row scaled: one compiled pass where it applies
            cols = compiled_unfold.scaled_unfold(x, spatial, channel, k, self.stride, self.padding)
            set_on_change(self, "unfold_compiled", cols is not None)
            if cols is None:
                cols = F.unfold(x, k, 1, self.padding, self.stride)
                if channel is None:
                    row_scale = spatial.view(b, 1, k * k, 1)
                else:
                    row_scale = channel.view(b, cin, 1) * spatial.view(b, 1, k * k)
                    row_scale = row_scale.unsqueeze(-1)
                cols.view(b, cin, k * k, positions).mul_(row_scale)
            if kernel is None:
                weight = self.weight.view(g, cout // g, rows)
            else:
                weight = self.mix_kernels(kernel, self.weight).view(b, g, cout // g, rows)
        with phase("conv"):
            # (b, g, positions, rows) @ (g, rows, cout / g): for g = 1 and n = 1 one GEMM over
            # the whole batch's positions
            by_position = torch.matmul(
                cols.view(b, g, rows, positions).transpose(-1, -2), weight.transpose(-1, -2)
            )
        out = by_position.transpose(-1, -2)  # (b, g, cout / g, positions)
        with phase("aggregation"):
            if filt is not None:
                out = out * filt.view(b, g, cout // g, 1)
            return out.reshape(b, cout, out_h, out_w).contiguous()

    def _forward_experts(self, x, channel, filt, kernel) -> Tensor:
        """The experts route (:meth:`KernelDynamicConv.experts_conv`) where it is exact:
        a_c scales the input, a_w mixes the n kernels' outputs and a_f scales the mix.
        The spatial attention multiplies each kernel per sample before the sum and does
        not factor out of the conv, so a layer that has one never takes this route."""
        b, cin = x.shape[:2]
        if channel is not None:
            with phase("aggregation"):
                x = x * channel.view(b, cin, 1, 1)
        out = self.experts_conv(x, kernel)
        if filt is not None:
            with phase("aggregation"):
                out = out * filt.view(b, self.out_channels, 1, 1)
        return out

    def _forward_naive(self, x, channel, filt, spatial, kernel) -> Tensor:
        n, cout, cin_g, k, _ = self.weight.shape
        g = self.groups
        outputs = []
        for i in range(x.shape[0]):
            weight = torch.zeros_like(self.weight[0])
            for j in range(n):
                a_w = 1.0 if kernel is None else kernel[i, j]
                a_s = 1.0 if spatial is None else spatial[i].view(1, 1, k, k)
                weight = weight + a_w * a_s * self.weight[j]
            # input-channel attention: channel c of group gi sits at weight[gi*cout/g:, c % cin_g]
            if channel is not None:
                a_c = channel[i].view(g, 1, cin_g).expand(g, cout // g, cin_g)
                weight = weight * a_c.reshape(cout, cin_g, 1, 1)
            if filt is not None:
                weight = weight * filt[i].view(cout, 1, 1, 1)
            outputs.append(self.conv(x[i : i + 1], weight))
        return torch.cat(outputs)

    def materialised_count(self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        """Per route of the last call: the input route's unfolded input (C_in k k H'W' per
        sample) plus, for n > 1, the mixed kernels; the mixed route's per-sample kernels
        when it forms any (n > 1, a spatial attention, or at batch 1 a_c / a_f applied on
        the smaller weight side), else nothing; the experts route none."""
        b, cin = x_shape[:2]
        kernel = math.prod(self.kernel_shape)
        att = self.attention
        mixes = self.num_kernels > 1 and att.kernel_fc is not None
        if self.impl == "fast" and self.route == EXPERTS:
            return 0
        if self.impl == "fast" and self.route == INPUT:
            k = self.kernel_size
            return b * (cin * k * k * math.prod(out_shape[-2:]) + (kernel if mixes else 0))
        if self.impl == "naive" or mixes or att.spatial_fc is not None:
            return b * kernel
        return kernel if any(self.weight_sides(x_shape)) else 0

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """Costs of the paper's dataflow (the released code's), whatever path runs.

        a_s and a_w scale each of the n kernels (n x weight size per image when
        either exists), a_c scales the input map and a_f the output map (each where
        the layer has it).
        """
        b, cin, h, w = x_shape
        n, cout, cin_g, k, _ = self.weight.shape
        att = self.attention
        mixes = att.spatial_fc is not None or att.kernel_fc is not None
        filter_scale = math.prod(out_shape) if att.filter_fc is not None else 0
        channel_scale = b * cin * h * w if att.channel_fc is not None else 0
        return {
            "conv": self.conv_part_madds(out_shape),
            "attention": b * att.madds(),
            "aggregation": b * n * cout * cin_g * k * k if mixes else 0,
            "feature_scale": channel_scale + filter_scale,
        }


def input_side_pays(out_channels: int, positions: int, groups: int = 1) -> bool:
    """Whether :meth:`ODConv2d._forward_input_side` beats the kernel route at this shape.

    Per input row (C_in k k of them), the kernel route writes and reads back C_out / groups
    kernel elements more than a static conv; the input route writes and reads back one
    unfolded element per output position (``positions`` = H' W') and multiplies them by a
    GEMM that runs slower than the conv. So it pays where C_out / groups is at least
    ``INPUT_SIDE_MIN_RATIO`` times the output positions: the deep, low-resolution dense
    layers, whose kernels are large; never a depthwise layer, whose kernel is tiny."""
    return out_channels // groups >= INPUT_SIDE_MIN_RATIO * positions
