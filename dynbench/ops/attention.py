"""Feature-attention baselines: SE, CBAM and ECA on a block's residual branch.

Unlike the kernel-dynamic operators these keep the convolution static and
rescale its output feature map, so they need no naive path: their forward is
already a per-sample computation written with batched tensor ops. Each module
reports its costs in the operators' vocabulary (:data:`dynbench.results.names.MADDS_PARTS`):
its FC/conv layers are ``attention`` and the multiplication of the attention
onto the feature map is ``feature_scale``; ``conv`` and ``aggregation`` are 0.

The FC layers are 1x1 convolutions without bias: that is what reproduces the
ODConv paper's parameter counts (ResNet-50 + SE 28.07M; with biases it would be
28.09M), and a 1x1 conv keeps the backbones' initialisers, which zero the bias
of any ``nn.Linear`` they meet, working.

The paper's MAdds are not conv+linear alone: SE's and CBAM's figures (and ECA's
on ResNet-18) are reproduced to the printed digit by conv+linear plus every
gate multiplication (``feature_scale``) plus the spatial pooling that feeds the
channel gate (average for SE/ECA, average and max for CBAM; CBAM's channel-wise
mean/max maps not counted). Pooling is no part of ``attention`` (see
:data:`dynbench.results.names.MADDS_PARTS`), so the tests add it from the shapes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dynbench.ops.analytic_madds import conv_madds


def reduced_channels(channels: int, reduction: int) -> int:
    """Hidden width of a bottleneck MLP; at least 1 so narrow layers still get one."""
    return max(1, channels // reduction)


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel size: ``(log2(C) + b) / gamma`` taken to an odd integer.

    The paper writes "nearest odd"; truncating and bumping an even result up
    (as the ECA reference code does) is exactly that, with a tie at an even
    value resolved upwards (C = 128 gives 5, C = 2048 gives 7).
    """
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class BranchAttention(nn.Module):
    """What SE, CBAM and ECA share: costs from shapes for the MAdds counters."""

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        raise NotImplementedError

    def conv_linear_madds(self, x: Tensor, out: Tensor) -> int:
        """The papers' convention: only the FC/conv layers of the attention branch."""
        return self.analytic_madds(tuple(x.shape), tuple(out.shape))["attention"]


class SqueezeExcite(BranchAttention):
    """Squeeze-and-Excitation (Hu et al., CVPR 2018, "Squeeze-and-Excitation Networks").

    GAP -> FC(C -> C/r) -> ReLU -> FC(C/r -> C) -> sigmoid, one weight per channel.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        squeezed = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(squeezed))))

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        n, c = x_shape[0], x_shape[1]
        hidden = self.fc1.out_channels
        fcs = conv_madds((n, hidden, 1, 1), c, 1) + conv_madds((n, c, 1, 1), hidden, 1)
        return {
            "conv": 0,
            "attention": fcs,
            "aggregation": 0,
            "feature_scale": math.prod(out_shape),
        }


class CBAM(BranchAttention):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018, "CBAM").

    Channel attention (one MLP shared by the average- and max-pooled descriptors,
    summed) followed by spatial attention (7x7 conv over the channel-wise mean
    and max maps), each applied as a sigmoid gate.
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        # One MLP call on both descriptors stacked along the batch: same weights, one launch.
        pooled = torch.cat([x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)])
        logits = self.fc2(self.relu(self.fc1(pooled)))
        x = x * torch.sigmoid(logits[:n] + logits[n:])
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(maps))

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        n, c, h, w = x_shape
        hidden = self.fc1.out_channels
        mlp = conv_madds((2 * n, hidden, 1, 1), c, 1)
        mlp += conv_madds((2 * n, c, 1, 1), hidden, 1)
        spatial = conv_madds((n, 1, h, w), 2, self.spatial.kernel_size[0])
        # the channel gate scales every element, then the spatial gate does again
        scale = 2 * math.prod(out_shape)
        return {"conv": 0, "attention": mlp + spatial, "aggregation": 0, "feature_scale": scale}


class ECA(BranchAttention):
    """Efficient Channel Attention (Wang et al., CVPR 2020, "ECA-Net").

    GAP -> 1D conv of size k across neighbouring channels (no bias) -> sigmoid:
    SE's channel gate without its dimensionality reduction, at k weights per block.
    """

    def __init__(self, channels: int, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        k = eca_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        descriptor = x.mean((2, 3)).view(n, 1, c)
        return x * torch.sigmoid(self.conv(descriptor)).view(n, c, 1, 1)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        n, c = x_shape[0], x_shape[1]
        conv = n * c * self.conv.kernel_size[0]
        return {
            "conv": 0,
            "attention": conv,
            "aggregation": 0,
            "feature_scale": math.prod(out_shape),
        }
