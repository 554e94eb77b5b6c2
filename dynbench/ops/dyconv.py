"""DY-Conv: dynamic convolution, attention over K kernels (Chen et al., CVPR 2020).

The kernel of sample x is (paper Eq. 1-3)

    W(x) = sum_k pi_k(x) W_k,  sum_k pi_k(x) = 1,  y = W(x) * x,

with pi(x) = softmax(z / T) and z from GAP -> 1x1 conv (C_in -> int(C_in / 4) + 1,
no bias; K when C_in = 3) -> ReLU -> 1x1 conv (-> K). The "+ 1" is the public
ResNet code's; the MobileNetV2 rows of the ODConv paper (12.40M, 7.95M, 4.57M)
are reproduced only without it (``hidden_offset=0``). Its ResNet rows (45.47M,
100.88M, 98.83M without the classifier) are reproduced by the attention of the
ODConv authors' own code with only the kernel-wise head: hidden width
max(int(C_in / 4), 16) and a batch norm before the ReLU (``min_hidden=16,
norm=True``). The temperature T is an
attribute: the paper anneals it from 30 to 1 during the first epochs and
evaluates at 1, the default here.

The fast path computes the attention with two matrix products on the pooled
vector, mixes the K kernels with one matmul per batch and runs a single
(grouped, batch-folded) convolution; the naive path runs the attention branch as
1x1 convolutions and builds each sample's kernel in a loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.base import AttentionTemperature
from dynbench.ops.kernel_mixing import KernelDynamicConv
from dynbench.ops.phases import phase
from dynbench.ops.squeeze import conv1x1_on_vectors, squeeze


class KernelAttention(nn.Module):
    """pi(x): softmax over K kernels from the pooled input."""

    def __init__(
        self,
        in_channels: int,
        num_kernels: int,
        ratio: float = 0.25,
        temperature: float = 1.0,
        hidden_offset: int = 1,
        min_hidden: int = 0,
        norm: bool = False,
    ) -> None:
        super().__init__()
        if in_channels == 3:
            hidden = num_kernels
        else:
            hidden = max(int(in_channels * ratio) + hidden_offset, min_hidden)
        self.hidden = hidden
        self.temperature = temperature
        self.fc1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
        # the ODConv code's attention normalises the hidden layer (identity at init in eval)
        self.bn = nn.BatchNorm2d(hidden) if norm else None
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, num_kernels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """The fast route: the 1x1 convs' weights viewed as matrices on the pooled vector
        (two ``F.linear`` calls instead of two convolutions on a 1x1 map; an eval-mode
        batch norm one functional call)."""
        z = conv1x1_on_vectors(squeeze(x, self.fc1, self.bn), self.fc2)
        return torch.softmax(z if self.temperature == 1 else z / self.temperature, dim=1)

    def reference(self, x: Tensor) -> Tensor:
        """The naive route, the branch as the paper draws it: GAP and two 1x1 convs."""
        z = self.fc1(F.adaptive_avg_pool2d(x, 1))
        if self.bn is not None:
            z = self.bn(z)
        z = self.fc2(self.relu(z)).flatten(1)
        return torch.softmax(z / self.temperature, dim=1)

    def madds(self) -> int:
        return self.fc1.in_channels * self.hidden + self.hidden * self.fc2.out_channels


class DynamicConv2d(AttentionTemperature, KernelDynamicConv):
    """Drop-in for ``nn.Conv2d`` aggregating K kernels with input-dependent attention."""

    operator = "dyconv"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = False,
        num_kernels: int = 4,
        ratio: float = 0.25,
        temperature: float = 1.0,
        hidden_offset: int = 1,
        min_hidden: int = 0,
        norm: bool = False,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, groups, num_kernels, bias
        )
        self.attention = KernelAttention(
            in_channels, num_kernels, ratio, temperature, hidden_offset, min_hidden, norm
        )

    def forward(self, x: Tensor) -> Tensor:
        with phase("attention"):
            pi = self.attention(x) if self.impl == "fast" else self.attention.reference(x)
        return self.mixed_conv(x, pi)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        b = x_shape[0]
        return {
            "conv": self.conv_part_madds(out_shape),
            "attention": b * self.attention.madds(),
            **self.mixing_madds(b),
        }
