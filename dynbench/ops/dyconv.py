"""DY-Conv: dynamic convolution, attention over K kernels (Chen et al., CVPR 2020).

The kernel of sample x is (paper Eq. 1-3)

    W(x) = sum_k pi_k(x) W_k,  sum_k pi_k(x) = 1,  y = W(x) * x,

with pi(x) = softmax(z / T) and z from GAP -> 1x1 conv (C_in -> int(C_in / 4) + 1,
no bias; K when C_in = 3) -> ReLU -> 1x1 conv (-> K). The "+ 1" is the public
ResNet code's; the MobileNetV2 rows of the ODConv paper (12.40M, 7.95M, 4.57M)
are reproduced only without it (``hidden_offset=0``). The temperature T is an
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

from dynbench.ops.base import KernelDynamicConv, phase


class KernelAttention(nn.Module):
    """pi(x): softmax over K kernels from the pooled input."""

    def __init__(
        self,
        in_channels: int,
        num_kernels: int,
        ratio: float = 0.25,
        temperature: float = 1.0,
        hidden_offset: int = 1,
    ) -> None:
        super().__init__()
        hidden = num_kernels if in_channels == 3 else int(in_channels * ratio) + hidden_offset
        self.hidden = hidden
        self.temperature = temperature
        self.fc1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, num_kernels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """The fast route: the 1x1 convs' weights viewed as matrices on the pooled vector
        (two ``F.linear`` calls instead of two convolutions on a 1x1 map)."""
        # the pooling op the MAdds counters know (x.mean would be skipped by fvcore)
        pooled = F.adaptive_avg_pool2d(x, 1).view(x.shape[0], -1)
        hidden = F.linear(pooled, self.fc1.weight.view(self.hidden, -1)).relu_()
        z = F.linear(hidden, self.fc2.weight.view(self.fc2.out_channels, -1), self.fc2.bias)
        return torch.softmax(z if self.temperature == 1 else z / self.temperature, dim=1)

    def reference(self, x: Tensor) -> Tensor:
        """The naive route, the branch as the paper draws it: GAP and two 1x1 convs."""
        z = self.fc2(self.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))).flatten(1)
        return torch.softmax(z / self.temperature, dim=1)

    def madds(self) -> int:
        return self.fc1.in_channels * self.hidden + self.hidden * self.fc2.out_channels


class DynamicConv2d(KernelDynamicConv):
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
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, groups, num_kernels, bias
        )
        self.attention = KernelAttention(
            in_channels, num_kernels, ratio, temperature, hidden_offset
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
