"""Sparse execution of a spatial DynConv bottleneck: compute only the active positions.

Eval mode only, batch norms folded into the convolutions. The feature maps are used as
channels-last rows (one row per position, batch folded in), so that gathering positions
is ``index_select`` and every conv is a GEMM on the gathered rows:

1. conv1 (1x1) on the rows of the dilated mask (the input positions the 3x3 reads);
2. those rows are written into a zero map with a one-pixel border, and the 3x3 conv of
   stride s runs as one GEMM over the 9 neighbours of each *active output* only;
3. conv3 (1x1) on the active rows; the result is added into the shortcut's rows with
   ``index_add_`` and the ReLU applied.

Every intermediate is exactly what the masked execution computes at the positions it
keeps, so the outputs agree to fp32 rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from dynbench.ops.base import phase


class FoldedConv(NamedTuple):
    weight: Tensor  # (C_in * k * k, C_out): rows in (ky, kx, c_in) order, ready for x @ w
    bias: Tensor  # (C_out,)


def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> FoldedConv:
    """conv then eval-mode bn as one affine map on rows of (ky, kx, c_in) patches."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale[:, None, None, None]
    rows = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).t().contiguous()
    return FoldedConv(rows, bn.bias - bn.running_mean * scale)


def neighbour_rows(active: Tensor, height: int, width: int, stride: int) -> Tensor:
    """(P, 9) row indices into a (N, H+2, W+2) zero-bordered map of the 3x3 window read
    by each active output; ``active`` holds (n, i, j) of the outputs."""
    n, i, j = active.unbind(1)
    offsets = torch.arange(3, device=active.device)
    rows = (stride * i)[:, None] + offsets  # padded row of each window row
    cols = (stride * j)[:, None] + offsets
    base = n * ((height + 2) * (width + 2))
    grid = rows[:, :, None] * (width + 2) + cols[:, None, :]
    return (base[:, None, None] + grid).reshape(-1, 9)


class SparseBottleneck:
    """The folded weights of one bottleneck, kept while its parameters do not change."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._folded: tuple[FoldedConv, FoldedConv, FoldedConv] | None = None

    def folded(self, block: nn.Module) -> tuple[FoldedConv, FoldedConv, FoldedConv]:
        pairs = ((block.conv1, block.bn1), (block.conv2, block.bn2), (block.conv3, block.bn3))
        tensors = [t for conv, bn in pairs for t in (conv.weight, *bn.parameters(), *bn.buffers())]
        key = tuple((t._version, t.data_ptr()) for t in tensors)
        if key != self._key:
            with torch.no_grad(), torch.inference_mode(False):
                self._folded = tuple(fold(conv, bn) for conv, bn in pairs)
            self._key = key
        return self._folded

    def __call__(self, block: nn.Module, x: Tensor, mask: Tensor, dilated: Tensor) -> Tensor:
        """relu(shortcut + mask * branch(x)) computed at the active positions only."""
        (w1, w2, w3), stride = self.folded(block), block.conv2.stride[0]
        batch, channels, height, width = x.shape
        x = x.contiguous(memory_format=torch.channels_last)
        identity = block._identity(x).contiguous(memory_format=torch.channels_last)
        out_h, out_w, planes = identity.shape[2], identity.shape[3], w1.weight.shape[1]
        with phase("aggregation"):  # gathering the rows a conv needs
            rows = x.permute(0, 2, 3, 1).reshape(-1, channels)
            read = dilated.reshape(-1).nonzero().squeeze(1)
            active = mask[:, 0].nonzero()
        with phase("conv"):
            h1 = torch.relu(torch.addmm(w1.bias, rows.index_select(0, read), w1.weight))
        with phase("aggregation"):
            padded = x.new_zeros(batch, height + 2, width + 2, planes)
            n, r, c = read // (height * width), read // width % height, read % width
            padded[n, r + 1, c + 1] = h1
            windows = neighbour_rows(active, height, width, stride)
            patches = padded.reshape(-1, planes).index_select(0, windows.reshape(-1))
        with phase("conv"):
            cols = patches.reshape(len(active), 9 * planes)
            h2 = torch.relu(torch.addmm(w2.bias, cols, w2.weight))
            h3 = torch.addmm(w3.bias, h2, w3.weight)
        with phase("aggregation"):  # scattering the branch into the shortcut
            out = identity.permute(0, 2, 3, 1).reshape(-1, identity.shape[1])
            if block.downsample is None:  # the shortcut is the block's input: not ours to write
                out = out.clone()
            n, i, j = active.unbind(1)
            out.index_add_(0, (n * out_h + i) * out_w + j, h3)
            out = torch.relu_(out)
            return out.view(batch, out_h, out_w, -1).permute(0, 3, 1, 2)
