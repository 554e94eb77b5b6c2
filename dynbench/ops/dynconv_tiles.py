"""Tile granularity of the sparse execution: S x S output tiles, each with its halo.

Pixel granularity (:mod:`dynbench.ops.dynconv_pixel`) gathers exactly the positions each
conv needs, and pays an index per position for every gather: its 3x3 conv reads 9 rows
per active output. Tile granularity computes every S x S tile of the block's output that
holds an active position: the 1x1 convs run as GEMMs on the rows of the tiles' windows,
the 3x3 convs as plain convolutions on a batch of (tile + halo) windows, with no window
gather at all. The price is the inactive positions inside the tiles and the halo, computed
and then dropped. Which granularity is faster depends on the masks (a blob fills its tiles,
scattered pixels do not) and on the block, so the spatial block times both on its masks and
keeps the faster (:class:`dynbench.models.masked_blocks.SpatialBlock`).

Exactness: a window position outside the map is zeroed before any 3x3 reads it (the conv's
zero padding); every other value a kept output reads is what the masked execution computes
there (a kept output reads only positions of its dilated mask), and outputs off the mask are
dropped before the residual sum. Eval mode only, batch norms folded.
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
    bottleneck_pairs,
    gather_rows,
    inverted_pairs,
    shortcut,
    shortcut_pairs,
)


def active_tiles(mask: Tensor, size: int) -> Tensor:
    """(T, 3): (n, ty, tx) of the ``size`` x ``size`` tiles of ``mask`` (N, 1, H, W) that hold
    an active position (tiles at the right and bottom edges may overhang the map)."""
    return F.max_pool2d(mask, size, size, ceil_mode=True)[:, 0].nonzero()


def tile_windows(
    tiles: Tensor, size: int, stride: int, halo: int, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """The square window each tile reads from an (N, H, W) map, as flat row indices into its
    (N H W, C) rows (clamped into the map) and whether each position lies inside the map.

    A tile of ``size`` outputs of a conv of ``stride`` reads (size - 1) * stride + 1 positions
    a side, plus ``halo`` on every side, starting at ty * size * stride - halo.
    """
    side = (size - 1) * stride + 1 + 2 * halo
    offsets = torch.arange(side, device=tiles.device)
    n, ty, tx = tiles.unbind(1)
    rows = (ty * size * stride - halo)[:, None] + offsets
    cols = (tx * size * stride - halo)[:, None] + offsets
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[
        :, None, :
    ]
    rows, cols = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    flat = (n[:, None, None] * height + rows[:, :, None]) * width + cols[:, None, :]
    return flat.reshape(-1), inside.reshape(-1)


def as_tiles(rows: Tensor, count: int, side: int) -> Tensor:
    """(count * side * side, C) rows as a channels-last (count, C, side, side) batch."""
    return rows.view(count, side, side, rows.shape[1]).permute(0, 3, 1, 2)


def kept_rows(tiles: Tensor, size: int, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Of the tiles' output positions (tile-major), the row numbers of the active ones, and
    their flat rows in the (N H W) output map."""
    height, width = mask.shape[-2:]
    index, inside = tile_windows(tiles, size, 1, 0, height, width)
    keep = inside & (mask.reshape(-1).index_select(0, index) > 0)
    return keep.nonzero()[:, 0], index[keep]


class TiledBlock(SparseBlock):
    """A sparse block at tile granularity; ``size`` is S, at the block's output resolution."""

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.size = size


class TiledBottleneck(TiledBlock):
    def __call__(
        self,
        block: nn.Module,
        x: Tensor,
        mask: Tensor,
        dilated: Tensor,
        handed_on: bool | None = None,
    ) -> Tensor:
        """conv1 on the tiles' input windows (halo 1), the strided 3x3 as a conv over them,
        conv3 at the active positions."""
        w1, w2, w3, *down = self.folded(bottleneck_pairs(block) + shortcut_pairs(block))
        tally = self.products = Counter()  # GEMMs by library
        stride = block.conv2.stride[0]
        size = self.size
        batch, channels, height, width = x.shape
        x, held = block_input(x, handed_on)
        identity = shortcut(block, x, down, tally)

        def compute() -> tuple:
            tiles = active_tiles(mask, size)
            read, inside = tile_windows(tiles, size, stride, 1, height, width)
            return (len(tiles), read, inside[:, None], *kept_rows(tiles, size, mask))

        with phase("aggregation"):
            count, read, inside, keep, index = self.indices(mask, dilated, (x.shape, size), compute)
            gathered = gather_rows(x, read)
        with phase("conv"):
            h1 = affine(gathered, w1, "relu", tally=tally)
            h1 = h1.mul_(inside)  # the 3x3's zero padding
            side = (size - 1) * stride + 3
            h2 = torch.relu_(F.conv2d(as_tiles(h1, count, side), w2.kernel, w2.bias, stride))
        with phase("aggregation"):
            h2 = gather_rows(h2, keep)
        with phase("conv"):
            h3 = affine(h2, w3, tally=tally)
        self.positions = (len(read), count * size * size, len(index))
        with phase("aggregation"):
            return add_to_shortcut(block, identity, index, h3, held=held)


class TiledBasicBlock(TiledBlock):
    def __call__(
        self,
        block: nn.Module,
        x: Tensor,
        mask: Tensor,
        dilated: Tensor,
        handed_on: bool | None = None,
    ) -> Tensor:
        """conv1 (3x3, the block's stride) over the tiles grown by conv2's halo, conv2 over
        the tiles; both as convs on windows of the input."""
        w1, w2, *down = self.folded(basic_pairs(block) + shortcut_pairs(block))
        tally = self.products = Counter()  # GEMMs by library
        stride = block.conv1.stride[0]
        size = self.size
        batch, channels, height, width = x.shape
        x, held = block_input(x, handed_on)
        identity = shortcut(block, x, down, tally)
        out_h, out_w = identity.shape[-2:]

        def compute() -> tuple:
            tiles = active_tiles(mask, size)
            # conv1's outputs: the tile and a halo of 1; its input: their windows
            read, inside = tile_windows(tiles, size, stride, stride + 1, height, width)
            _, grown = tile_windows(tiles, size, 1, 1, out_h, out_w)
            grown = grown.view(len(tiles), 1, size + 2, size + 2)
            return (len(tiles), read, inside[:, None], grown, *kept_rows(tiles, size, mask))

        with phase("aggregation"):
            count, read, inside, grown, keep, index = self.indices(
                mask, dilated, (x.shape, size), compute
            )
            rows = gather_rows(x, read).mul_(inside)  # conv1's zero padding
        with phase("conv"):
            side = (size + 1) * stride + 3
            h1 = F.conv2d(as_tiles(rows, count, side), w1.kernel, w1.bias, stride)
            h1 = torch.relu_(h1).mul_(grown)
            h2 = F.conv2d(h1, w2.kernel, w2.bias)
        with phase("aggregation"):
            h2 = gather_rows(h2, keep)
            self.positions = (grown.numel(), count * size * size)
            return add_to_shortcut(block, identity, index, h2, held=held)


class TiledInvertedResidual(TiledBlock):
    def __call__(
        self,
        block: nn.Module,
        x: Tensor,
        mask: Tensor,
        dilated: Tensor,
        handed_on: bool | None = None,
    ) -> Tensor:
        """Expand on the tiles' windows (halo 1), the depthwise 3x3 as a conv over them,
        project at the active positions, added to the input."""
        w1, w2, w3 = self.folded(inverted_pairs(block))
        tally = self.products = Counter()  # GEMMs by library
        size = self.size
        batch, channels, height, width = x.shape
        x, held = block_input(x, handed_on)

        def compute() -> tuple:
            tiles = active_tiles(mask, size)
            read, inside = tile_windows(tiles, size, 1, 1, height, width)
            return (len(tiles), read, inside[:, None], *kept_rows(tiles, size, mask))

        with phase("aggregation"):
            count, read, inside, keep, index = self.indices(mask, dilated, (x.shape, size), compute)
            gathered = gather_rows(x, read)
        with phase("conv"):
            h1 = affine(gathered, w1, "relu6", tally=tally)
            h1 = as_tiles(h1.mul_(inside), count, size + 2)
            hidden = h1.shape[1]
            h2 = torch.clamp_(F.conv2d(h1, w2.kernel, w2.bias, groups=hidden), 0, 6)
        with phase("aggregation"):
            h2 = gather_rows(h2, keep)
        with phase("conv"):
            h3 = affine(h2, w3, tally=tally)
        self.positions = (len(read), count * size * size, len(index))
        with phase("aggregation"):
            return add_to_shortcut(block, x, index, h3, relu=False, held=held)
