"""CGC: Context-Gated Convolution (Lin et al., ECCV 2020).

A k x k convolution whose kernel is gated per sample, W(x) = sigmoid(G(x)) * W, with
one gate per weight, G(x) of shape C_out x C_in x k x k, decoded from the input's
global context:

* context encoding: the input pooled to k x k, each channel's k^2 values projected
  to L = int(k^2 / 2 + 1) latent values (one (L, k^2) matrix shared by all channels);
* gate decoding, input side: batch norm over the C_in channels, ReLU, then (k^2, L)
  to one k x k gate per input channel;
* channel interaction, output side: a second batch norm over C_in, ReLU, a grouped
  linear map from C_in to C_out channels (groups of g = 16 input channels, or all
  of them below 16, each mapped to C_out g / C_in outputs by one shared (., g)
  matrix), a batch norm over C_out, ReLU, then (k^2, L) to one k x k gate per output
  channel;
* the gate of weight (o, i, u, v) is sigmoid(input gate (i, u, v) + output gate (o, u, v)).

Layer shapes, the group rule and which convolutions are gated (those with k > 1;
1 x 1 convs stay static) follow the authors' released code
(github.com/XudongLinthu/context-gated-convolution), which has no bias in its
projections. The fast path gates the batch's kernels at once and runs one
batch-folded grouped convolution; the naive path, defined in eval mode (its batch
norms use their running statistics), builds each sample's channel interaction as a
block-diagonal matrix and convolves by unfolding the input into patches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.kernel_mixing import KernelDynamicConv
from dynbench.ops.phases import phase

GROUP_WIDTH = 16  # input channels per group of the channel-interaction map


class ContextGatedConv2d(KernelDynamicConv):
    """Drop-in for ``nn.Conv2d`` (groups = 1, k > 1) with a context-decoded weight gate."""

    operator = "cgc"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = False,
    ) -> None:
        if kernel_size < 2:
            raise ValueError("CGC gates k x k kernels with k > 1 (1x1 convs stay static)")
        group = GROUP_WIDTH if in_channels >= GROUP_WIDTH else in_channels
        if in_channels % group or (out_channels * group) % in_channels:
            raise ValueError(
                f"CGC's channel interaction needs groups of {group} input channels that "
                f"divide {in_channels} inputs and map evenly to {out_channels} outputs"
            )
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, 1, 1, bias)
        nn.init.kaiming_normal_(self.weight[0], mode="fan_out", nonlinearity="relu")
        elements = kernel_size * kernel_size
        self.latent = int(elements / 2 + 1)
        self.group = group
        self.group_out = out_channels * group // in_channels
        self.encode = nn.Parameter(torch.empty(self.latent, elements))
        self.bn_input = nn.BatchNorm1d(in_channels)
        self.bn_interact = nn.BatchNorm1d(in_channels)
        self.interact = nn.Parameter(torch.empty(self.group_out, group))
        self.bn_output = nn.BatchNorm1d(out_channels)
        self.decode_input = nn.Parameter(torch.empty(elements, self.latent))
        self.decode_output = nn.Parameter(torch.empty(elements, self.latent))
        for matrix in (self.encode, self.interact, self.decode_input, self.decode_output):
            nn.init.kaiming_uniform_(matrix, a=math.sqrt(5))  # nn.Linear's default

    def _encoded(self, x: Tensor) -> Tensor:
        """(B, C_in, L): each channel's pooled k x k context projected to L values."""
        k = self.kernel_size
        pooled = F.adaptive_avg_pool2d(x, k).flatten(2)
        return F.linear(pooled, self.encode)

    def _gate(self, x: Tensor) -> Tensor:
        """sigmoid(G(x)), (B, C_out, C_in, k^2), the whole batch at once."""
        batch = x.shape[0]
        encoded = self._encoded(x)
        inner = F.linear(F.relu(self.bn_input(encoded)), self.decode_input)
        groups = self.in_channels // self.group
        mixed = F.relu(self.bn_interact(encoded)).view(batch, groups, self.group, self.latent)
        mixed = F.linear(mixed.transpose(2, 3), self.interact)  # (B, groups, L, group_out)
        mixed = mixed.transpose(2, 3).reshape(batch, self.out_channels, self.latent)
        outer = F.linear(F.relu(self.bn_output(mixed)), self.decode_output)
        return torch.sigmoid(inner[:, None] + outer[:, :, None])

    def forward(self, x: Tensor) -> Tensor:
        return self._fast(x) if self.impl == "fast" else self._naive(x)

    def _fast(self, x: Tensor) -> Tensor:
        with phase("attention"):
            gate = self._gate(x)
        with phase("aggregation"):
            kernel = self.scale(gate, self.weight.flatten(3), owned=False)
            kernel = kernel.view(x.shape[0], *self.weight.shape[1:])
        bias = None if self.bias is None else self.bias.expand(x.shape[0], -1)
        with phase("conv"):
            return self.per_sample_conv(x, kernel, bias)

    def _naive(self, x: Tensor) -> Tensor:
        """Per sample: the channel interaction as one (C_out, C_in) block-diagonal matrix,
        the gated kernel, and the convolution as patches times the flattened kernel."""
        if self.training:
            raise RuntimeError(
                "the naive CGC path normalises one sample with the running statistics, so "
                "it is defined in eval mode only; call .eval() or use impl='fast'"
            )
        k = self.kernel_size
        interact = torch.block_diag(*[self.interact] * (self.in_channels // self.group))
        outputs = []
        for sample in x.split(1):
            with phase("attention"):
                encoded = self._encoded(sample)[0]  # (C_in, L)
                inner = F.relu(self.bn_input(encoded[None]))[0] @ self.decode_input.T
                mixed = interact @ F.relu(self.bn_interact(encoded[None]))[0]  # (C_out, L)
                outer = F.relu(self.bn_output(mixed[None]))[0] @ self.decode_output.T
                gate = torch.sigmoid(inner[None, :, :] + outer[:, None, :])
            with phase("aggregation"):
                kernel = gate * self.weight[0].flatten(2)
            with phase("conv"):
                patches = F.unfold(sample, k, padding=self.padding, stride=self.stride)
                height, width = self.output_size(*sample.shape[2:])
                out = kernel.reshape(self.out_channels, -1) @ patches[0]
                if self.bias is not None:
                    out = out + self.bias[0][:, None]
                outputs.append(out.view(1, self.out_channels, height, width))
        return torch.cat(outputs)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """conv: the static conv; attention: the four projections of the gate branch
        (pooling, batch norms and the sigmoid excluded); aggregation: one multiply per
        weight per sample for the gating."""
        batch = x_shape[0]
        elements = self.kernel_size**2
        cin, cout, latent = self.in_channels, self.out_channels, self.latent
        branch = (
            cin * elements * latent  # context encoding
            + cin * latent * elements  # input-side gate decoding
            + latent * cout * self.group  # grouped channel interaction
            + cout * latent * elements  # output-side gate decoding
        )
        return {
            "conv": self.conv_part_madds(out_shape),
            "attention": batch * branch,
            "aggregation": batch * cout * cin * elements,
            "feature_scale": 0,
        }

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, latent={self.latent}, "
            f"group={self.group}, impl={self.impl!r}"
        )
