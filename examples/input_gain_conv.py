"""A small dynamic convolution to benchmark against the papers' operators: an example of
``dynbench run --operator``, not an operator from any paper.

``InputGainConv2d`` is a static convolution whose output channels are scaled per image by
a gain read from the input it is about to convolve: the spatial mean of each input channel
goes through one linear map (C_in -> C_out) and ``1 + tanh``, and the conv's output is
multiplied by it. The map starts at zero, so a fresh layer computes exactly the static
conv. It takes ``nn.Conv2d``'s arguments, returns what the conv returns in shape, and
declares its analytic MAdds the way dynbench's own operators do, so every MAdds counter,
the analytic one included, has a figure for it.

    dynbench run --suite params --operator input_gain_conv:InputGainConv2d --models 'resnet18*'
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class InputGainConv2d(nn.Module):
    """``conv(x) * (1 + tanh(W mean_hw(x) + b))``, one gain per image and output channel."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias
        )
        self.gain = nn.Linear(in_channels, out_channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.gain.bias)

    def forward(self, x: Tensor) -> Tensor:
        gain = 1 + torch.tanh(self.gain(x.mean(dim=(2, 3))))
        return self.conv(x) * gain[:, :, None, None]

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """Multiply-adds by part, from the shapes alone: the conv, the gain's linear map
        (the pooling that feeds it counts no multiply) and the output's scaling."""
        batch = x_shape[0]
        kernel = self.conv.kernel_size[0] * self.conv.kernel_size[1]
        return {
            "conv": math.prod(out_shape) * (self.conv.in_channels // self.conv.groups) * kernel,
            "attention": batch * self.gain.in_features * self.gain.out_features,
            "aggregation": 0,
            "feature_scale": math.prod(out_shape),
        }

    def conv_linear_madds(self, x: Tensor, out: Tensor) -> int:
        """The papers' convention: convolution and fully connected layers only."""
        parts = self.analytic_madds(tuple(x.shape), tuple(out.shape))
        return parts["conv"] + parts["attention"]
