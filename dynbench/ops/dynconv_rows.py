"""What both granularities of spatial DynConv's sparse execution share: feature maps as rows.

A sparse block works on channels-last rows, one row per position with the batch folded in,
so that gathering the positions a conv needs is one ``index_select`` and every 1x1 conv a
GEMM on the gathered rows. This module holds the (conv, bn) pairs folded into such GEMMs,
the row gather and scatter, the residual sum at the active rows, and :class:`SparseBlock`,
which keeps a block's folded weights, index tensors and zero-bordered buffers across calls
while they stay valid. Pixel granularity is :mod:`dynbench.ops.dynconv_pixel`, tile
granularity :mod:`dynbench.ops.dynconv_tiles`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn


class FoldedConv(NamedTuple):
    weight: Tensor  # (C_in * k * k, C_out): rows in (ky, kx, c_in) order, ready for x @ w
    bias: Tensor  # (C_out,)
    kernel: Tensor  # the same weights in conv layout (C_out, C_in / groups, k, k)


def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> FoldedConv:
    """conv then eval-mode bn as one affine map on rows of (ky, kx, c_in) patches."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale[:, None, None, None]
    rows = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).t().contiguous()
    kernel = weight.contiguous(memory_format=torch.channels_last)  # as the tiles: no reorder
    return FoldedConv(rows, bn.bias - bn.running_mean * scale, kernel)


def map_rows(x: Tensor) -> Tensor:
    """(N H W, C): the rows of an (N, C, H, W) map, one per position; a view where ``x`` is
    channels-last (every sparse block makes its input so), a copy otherwise."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """The rows of the (N, C, H, W) map ``x`` at the flat (n H + i) W + j ``index``."""
    return map_rows(x).index_select(0, index)


def flat_rows(positions: Tensor, height: int, width: int) -> Tensor:
    """Row indices of (n, i, j) ``positions`` in an (N H W, C) channels-last map."""
    n, i, j = positions.unbind(1)
    return (n * height + i) * width + j


def bordered_rows(positions: Tensor, height: int, width: int, border: int = 1) -> Tensor:
    """Row indices of (n, i, j) ``positions`` in an (N, height, width) map that has a
    ``border`` around the positions' map (``height`` and ``width`` include it)."""
    n, i, j = positions.unbind(1)
    return (n * height + i + border) * width + j + border


def add_to_shortcut(
    block: nn.Module, identity: Tensor, index: Tensor, rows: Tensor, relu: bool = True
) -> Tensor:
    """(relu of) shortcut + branch, the branch's ``rows`` added at the map rows ``index``.

    With the ReLU, the map is passed over once: relu(shortcut) everywhere (out of place
    for the block's input, which is not ours to write; in place on a downsample's output),
    then the active rows replaced by relu(shortcut + branch), gathered before and written
    after. Without it, a copy of the shortcut (the input) gets the rows added."""
    batch, channels, height, width = identity.shape
    shortcut = map_rows(identity)
    if relu:
        active = shortcut.index_select(0, index).add_(rows).relu_()
        if getattr(block, "downsample", None) is None:  # the block's input
            out = torch.relu(shortcut)
        else:
            out = shortcut.relu_()
        out.index_copy_(0, index, active)
    else:
        out = shortcut.clone() if getattr(block, "downsample", None) is None else shortcut
        out.index_add_(0, index, rows)
    return out.view(batch, height, width, channels).permute(0, 3, 1, 2)


class SparseBlock:
    """The folded (conv, bn) pairs of one block, kept while their parameters do not change;
    the index tensors and zero maps of its last masks; and at how many positions the last
    call ran each conv of the branch (``positions``, in the order of the block's branch
    convs), which the executed MAdds count."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._folded: tuple[FoldedConv, ...] = ()
        self.positions: tuple[int, ...] = ()
        self._indices: tuple | None = None  # see indices
        self._zeros: dict[tuple, Tensor] = {}  # see scatter_into

    def indices(
        self, mask: Tensor, dilated: Tensor, key: tuple, compute: Callable[[], tuple]
    ) -> tuple:
        """``compute()``, the index tensors of a call on these masks, kept while the block
        is handed the same mask tensors (a synthetic mask source draws them once per input
        shape; the mask unit's masks are new on every call) at the same ``key`` (shapes,
        tile size): a dozen small ops a block that an unchanged mask need not pay again."""
        key = (*key, torch.is_inference_mode_enabled())
        kept = self._indices
        if kept is not None and kept[0] is mask and kept[1] is dilated and kept[2] == key:
            return kept[3]
        value = compute()
        self._indices = (mask, dilated, key, value)
        self._zeros = {}  # their rows were written at the old indices
        return value

    def scatter_into(self, rows: Tensor, index: Tensor, shape: tuple[int, ...]) -> Tensor:
        """A zero (N, H, W, C) map holding ``rows`` at the flat row indices ``index``.

        The map is kept until the indices change: the next call on the same masks writes
        the same rows and every other row is still zero, so the map is not cleared again.
        Whatever reads it (a window gather, a conv) copies out of it before the next call.
        """
        key = (shape, rows.dtype, rows.device)
        zeros = self._zeros.get(key)
        if zeros is None:
            zeros = self._zeros[key] = rows.new_zeros(shape)
        zeros.view(-1, shape[-1]).index_copy_(0, index, rows)
        return zeros

    def folded(self, pairs: tuple[tuple[nn.Conv2d, nn.BatchNorm2d], ...]) -> tuple[FoldedConv, ...]:
        tensors = [t for conv, bn in pairs for t in (conv.weight, *bn.parameters(), *bn.buffers())]
        key = tuple((t._version, t.data_ptr()) for t in tensors)
        if key != self._key:
            with torch.no_grad(), torch.inference_mode(False):
                self._folded = tuple(fold(conv, bn) for conv, bn in pairs)
            self._key = key
        return self._folded


def bottleneck_pairs(block: nn.Module) -> tuple[tuple[nn.Conv2d, nn.BatchNorm2d], ...]:
    return ((block.conv1, block.bn1), (block.conv2, block.bn2), (block.conv3, block.bn3))


def basic_pairs(block: nn.Module) -> tuple[tuple[nn.Conv2d, nn.BatchNorm2d], ...]:
    return ((block.conv1, block.bn1), (block.conv2, block.bn2))


def inverted_pairs(block: nn.Module) -> tuple[tuple[nn.Conv2d, nn.BatchNorm2d], ...]:
    expand, depthwise, project, bn = block.conv[:4]
    return ((expand[0], expand[1]), (depthwise[0], depthwise[1]), (project, bn))
