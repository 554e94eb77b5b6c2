"""Pixel granularity of spatial DynConv's sparse execution: each conv at exactly its positions.

Eval mode only, batch norms folded into the convolutions; the maps are used as channels-last
rows (:mod:`dynbench.ops.dynconv_rows`), so that gathering positions is ``index_select`` and
every conv is a GEMM on the gathered rows. A bottleneck:

1. conv1 (1x1) on the rows of the dilated mask (the input positions the 3x3 reads);
2. those rows are written into a zero map with a one-pixel border, and the 3x3 conv of
   stride s runs as one GEMM over the 9 neighbours of each *active output* only;
3. conv3 (1x1) on the active rows; the result is added into the shortcut's rows with
   ``index_add_`` and the ReLU applied.

Every intermediate is exactly what the masked execution computes at the positions it
keeps, so the outputs agree to fp32 rounding.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.base import phase
from dynbench.ops.dynconv_rows import (
    SparseBlock,
    add_to_shortcut,
    affine,
    basic_pairs,
    block_input,
    bordered_rows,
    bottleneck_pairs,
    flat_rows,
    gather_rows,
    inverted_pairs,
    shortcut,
    shortcut_pairs,
)


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


def window_cols(padded: Tensor, windows: Tensor) -> Tensor:
    """(P, 9 C): the 3x3 windows of a (N, H+2, W+2, C) zero-bordered map at ``windows``,
    the flat (P 9,) row indices :func:`neighbour_rows` gives."""
    channels = padded.shape[-1]
    flat = padded.reshape(-1, channels).index_select(0, windows)
    return flat.view(-1, 9 * channels)


class SparseBottleneck(SparseBlock):
    def __call__(
        self,
        block: nn.Module,
        x: Tensor,
        mask: Tensor,
        dilated: Tensor,
        handed_on: bool | None = None,
    ) -> Tensor:
        """relu(shortcut + mask * branch(x)) computed at the active positions only."""
        w1, w2, w3, *down = self.folded(bottleneck_pairs(block) + shortcut_pairs(block))
        tally = self.products = Counter()  # GEMMs by library
        stride = block.conv2.stride[0]
        batch, channels, height, width = x.shape
        x, held = block_input(x, handed_on)
        identity = shortcut(block, x, down, tally)
        out_h, out_w = identity.shape[-2:]

        def compute() -> tuple:
            read, active = dilated[:, 0].nonzero(), mask[:, 0].nonzero()
            return (
                flat_rows(read, height, width),
                bordered_rows(read, height + 2, width + 2),
                neighbour_rows(active, height, width, stride).reshape(-1),
                flat_rows(active, out_h, out_w),
            )

        with phase("aggregation"):  # gathering the rows a conv needs
            read, scatter, windows, index = self.indices(mask, dilated, x.shape, compute)
            gathered = gather_rows(x, read)
        with phase("conv"):
            h1 = affine(gathered, w1, "relu", tally=tally)
        with phase("aggregation"):
            padded = self.scatter_into(h1, scatter, (batch, height + 2, width + 2, h1.shape[1]))
            cols = window_cols(padded, windows)
        with phase("conv"):
            h2 = affine(cols, w2, "relu", tally=tally)
            h3 = affine(h2, w3, tally=tally)
        self.positions = (len(read), len(index), len(index))
        with phase("aggregation"):  # scattering the branch into the shortcut
            return add_to_shortcut(block, identity, index, h3, held=held)


class SparseBasicBlock(SparseBlock):
    def __call__(
        self,
        block: nn.Module,
        x: Tensor,
        mask: Tensor,
        dilated: Tensor,
        handed_on: bool | None = None,
    ) -> Tensor:
        """conv1 (3x3, the block's stride) at the dilated outputs, conv2 at the active ones."""
        w1, w2, *down = self.folded(basic_pairs(block) + shortcut_pairs(block))
        tally = self.products = Counter()  # GEMMs by library
        stride = block.conv1.stride[0]
        x, held = block_input(x, handed_on)
        identity = shortcut(block, x, down, tally)
        batch, _, out_h, out_w = identity.shape
        height, width = x.shape[-2:]

        def compute() -> tuple:
            read, active = dilated[:, 0].nonzero(), mask[:, 0].nonzero()
            return (
                neighbour_rows(read, height, width, stride).reshape(-1),
                bordered_rows(read, out_h + 2, out_w + 2),
                neighbour_rows(active, out_h, out_w, 1).reshape(-1),
                flat_rows(active, out_h, out_w),
            )

        with phase("aggregation"):
            reads, scatter, windows, index = self.indices(mask, dilated, x.shape, compute)
            cols = window_cols(F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1)), reads)
        with phase("conv"):
            h1 = affine(cols, w1, "relu", tally=tally)
        with phase("aggregation"):
            shape = (batch, out_h + 2, out_w + 2, h1.shape[1])
            cols = window_cols(self.scatter_into(h1, scatter, shape), windows)
        with phase("conv"):
            h2 = affine(cols, w2, tally=tally)
        self.positions = (len(scatter), len(index))
        with phase("aggregation"):
            return add_to_shortcut(block, identity, index, h2, held=held)


class SparseInvertedResidual(SparseBlock):
    def __call__(
        self,
        block: nn.Module,
        x: Tensor,
        mask: Tensor,
        dilated: Tensor,
        handed_on: bool | None = None,
    ) -> Tensor:
        """Expand (1x1) at the dilated positions, the depthwise 3x3 over the expanded map,
        project at the active positions, added to the input (stride 1, no activation after
        the sum)."""
        w1, w2, w3 = self.folded(inverted_pairs(block))
        tally = self.products = Counter()  # GEMMs by library
        batch, channels, height, width = x.shape
        x, held = block_input(x, handed_on)

        def compute() -> tuple:
            read, active = dilated[:, 0].nonzero(), mask[:, 0].nonzero()
            return flat_rows(read, height, width), flat_rows(active, height, width)

        with phase("aggregation"):
            read, index = self.indices(mask, dilated, x.shape, compute)
            gathered = gather_rows(x, read)
        with phase("conv"):
            h1 = affine(gathered, w1, "relu6", tally=tally)
        with phase("aggregation"):
            hidden = h1.shape[1]
            expanded = self.scatter_into(h1, read, (batch, height, width, hidden))
        with phase("conv"):
            # a depthwise 3x3 costs 9 MAdds a value: run it on the whole (mostly zero) map,
            # which is cheaper than gathering 9 windows of every active output
            maps = F.conv2d(
                expanded.permute(0, 3, 1, 2), w2.kernel, w2.bias, padding=1, groups=hidden
            )
        with phase("aggregation"):
            h2 = torch.clamp_(gather_rows(maps, index), 0, 6)
        with phase("conv"):
            h3 = affine(h2, w3, tally=tally)
        self.positions = (len(read), batch * height * width, len(index))
        with phase("aggregation"):
            return add_to_shortcut(block, x, index, h3, relu=False, held=held)
