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

from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn


class FoldedConv(NamedTuple):
    weight: Tensor  # (C_out, C_in * k * k): columns in (ky, kx, c_in) order, see affine
    bias: Tensor  # (C_out,)
    kernel: Tensor  # the same weights in conv layout (C_out, C_in / groups, k, k)


def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> FoldedConv:
    """conv then eval-mode bn as one affine map on rows of (ky, kx, c_in) patches."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale[:, None, None, None]
    rows = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).contiguous()
    kernel = weight.contiguous(memory_format=torch.channels_last)  # as the tiles: no reorder
    return FoldedConv(rows, bn.bias - bn.running_mean * scale, kernel)


# the activations affine applies, as oneDNN's post-ops: (name, scalars)
ACTIVATIONS = {"": ("none", []), "relu": ("relu", []), "relu6": ("hardtanh", [0.0, 6.0])}


def _onednn_linear() -> bool:
    """Whether this torch has oneDNN's fused linear (``torch.ops.mkldnn._linear_pointwise``,
    the op inductor lowers a CPU linear to) and it runs: a private op, so checked once."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        rows, weight = torch.ones(2, 3), torch.ones(4, 3)
        out = torch.ops.mkldnn._linear_pointwise(rows, weight, torch.zeros(4), "relu", [], "")
    except (AttributeError, RuntimeError):
        return False
    return bool(out.shape == (2, 4) and (out == 3).all())


ONEDNN_LINEAR = _onednn_linear()


# The smallest product (rows x C_in k k x C_out MAdds) that affine hands to oneDNN: below it
# oneDNN's per-call setup costs more than its faster kernel saves (set by timing both on
# the products of ResNet-50's and MobileNetV2's sparse blocks at blob density 0.25).
ONEDNN_FROM_MADDS = 10_000_000


def affine(
    rows: Tensor, conv: FoldedConv, activation: str = "", tally: Counter | None = None
) -> Tensor:
    """``activation(rows @ conv.weight.T + conv.bias)``; ``activation`` one of
    :data:`ACTIVATIONS` ("" none, ``relu``, ``relu6``).

    A float32 CPU product of at least :data:`ONEDNN_FROM_MADDS` runs as oneDNN's inner product
    with the activation fused, where torch has it (:data:`ONEDNN_LINEAR`): on the skinny
    products of a sparse block (a few hundred rows or fewer, weights of up to
    C_out x 9 C_in) its kernel is faster than the BLAS GEMM behind ``addmm``. Anything
    else runs as ``addmm`` and the activation in place. ``tally`` (if given) counts the
    call under the library that ran it, ``onednn`` or ``addmm``."""
    weight = conv.weight
    large = rows.shape[0] * weight.shape[0] * weight.shape[1] >= ONEDNN_FROM_MADDS
    onednn = ONEDNN_LINEAR and large and rows.device.type == "cpu" and rows.dtype == torch.float32
    if tally is not None:
        tally["onednn" if onednn else "addmm"] += 1
    if onednn:
        name, scalars = ACTIVATIONS[activation]
        return torch.ops.mkldnn._linear_pointwise(rows, weight, conv.bias, name, scalars, "")
    return activate_(torch.addmm(conv.bias, rows, weight.t()), activation)


def activate_(out: Tensor, activation: str) -> Tensor:
    """``out`` with one of :data:`ACTIVATIONS` applied in place ("" leaves it as it is)."""
    if activation == "relu":
        return out.relu_()
    return out.clamp_(0, 6) if activation == "relu6" else out


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


def plain_1x1(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain ``nn.Conv2d`` that is one GEMM over its input's rows at
    its stride: 1x1, no padding, no groups, no bias (which :func:`fold` leaves out)."""
    plain = type(conv) is nn.Conv2d and conv.bias is None and conv.groups == 1
    return plain and conv.kernel_size == (1, 1) and conv.padding == (0, 0)


def shortcut_pairs(block: nn.Module) -> tuple[tuple[nn.Conv2d, nn.BatchNorm2d], ...]:
    """The block's downsample as a (conv, bn) pair where it is a :func:`plain_1x1` conv and
    a batch norm (the ResNets'); none for an identity shortcut or any other downsample."""
    down = getattr(block, "downsample", None)
    if not isinstance(down, nn.Sequential) or len(down) != 2:
        return ()
    conv, bn = down
    return ((conv, bn),) if plain_1x1(conv) and isinstance(bn, nn.BatchNorm2d) else ()


def shortcut(
    block: nn.Module, x: Tensor, folded: tuple[FoldedConv, ...], tally: Counter | None = None
) -> Tensor:
    """The block's shortcut of the channels-last ``x``, channels-last.

    A 1x1 downsample folded with its batch norm (``folded``, from :func:`shortcut_pairs`)
    runs as one GEMM on the rows of ``x`` at its stride, the layout the residual sum reads:
    a strided 1x1 convolution on a channels-last map is a slow case of the conv kernels on
    the deep layers (``scripts/spatial-before-after.py`` measures the difference). Any
    other shortcut runs as the block's own."""
    if not folded:
        return block._identity(x).contiguous(memory_format=torch.channels_last)
    stride = block.downsample[0].stride[0]
    picked = x[:, :, ::stride, ::stride] if stride > 1 else x
    batch, _, height, width = picked.shape
    rows = affine(map_rows(picked), folded[0], tally=tally)
    return rows.view(batch, height, width, -1).permute(0, 3, 1, 2)


# How a sparse block holds its input map, which decides whether the residual sum may write
# into it: BORROWED (the caller's: the sum copies it first), OWNED (a copy made for this
# block, or a map the previous spatial block handed on) and OWNED_NONNEGATIVE (handed on
# after a ReLU: relu of it is itself, so the sum touches its active rows only).
BORROWED, OWNED, OWNED_NONNEGATIVE = "borrowed", "owned", "owned, nonnegative"
# The attribute a spatial block sets on the map it returns: True if the map is nonnegative.
# A plain chain of blocks reads a block's output only as the next block's input, so the
# next spatial block may take it over (once: it removes the mark) instead of copying it,
# the way an in-place ReLU takes over the map before it; code that keeps a spatial block's
# output and calls the next block on it again reads what that block wrote.
HANDED_ON = "_dynbench_handed_on"


def block_input(x: Tensor, handed_on: bool | None) -> tuple[Tensor, str]:
    """``x`` as a channels-last map, and how the block holds that map: taken over where
    ``x`` was handed on (``handed_on``, the mark :func:`take_over` removed; None: none),
    owned where the layout change copied it, borrowed otherwise."""
    rows = x.contiguous(memory_format=torch.channels_last)
    if handed_on is not None:
        return rows, OWNED_NONNEGATIVE if handed_on else OWNED
    return rows, BORROWED if rows is x else OWNED


def hand_on(out: Tensor, nonnegative: bool) -> Tensor:
    """Mark ``out`` as a map the next spatial block may take over (:data:`HANDED_ON`)."""
    setattr(out, HANDED_ON, nonnegative)
    return out


def take_over(x: Tensor) -> bool | None:
    """The mark ``x`` was handed on with, removed (None: none): one block takes a map over."""
    return x.__dict__.pop(HANDED_ON, None)


def add_to_shortcut(
    block: nn.Module,
    identity: Tensor,
    index: Tensor,
    rows: Tensor,
    relu: bool = True,
    held: str = BORROWED,
) -> Tensor:
    """(relu of) shortcut + branch, the branch's ``rows`` added at the map rows ``index``.

    ``held`` says how the block holds its input, the shortcut of a block without a
    downsample (a downsample's output is the block's own). With the ReLU: the active rows
    are gathered, summed and rectified, the map is rectified everywhere (in place where it
    is the block's, not at all where it is a nonnegative map handed on to it, out of place
    where it is borrowed), and the active rows are written back. Without it: the rows are
    added into the map, a copy of it where it is borrowed."""
    batch, channels, height, width = identity.shape
    shortcut = map_rows(identity)
    if getattr(block, "downsample", None) is not None:
        held = OWNED
    if relu:
        active = shortcut.index_select(0, index).add_(rows).relu_()
        if held == BORROWED:
            out = torch.relu(shortcut)
        else:
            out = shortcut if held == OWNED_NONNEGATIVE else shortcut.relu_()
        out.index_copy_(0, index, active)
    else:
        out = shortcut.clone() if held == BORROWED else shortcut
        out.index_add_(0, index, rows)
    return out.view(batch, height, width, channels).permute(0, 3, 1, 2)


class SparseBlock:
    """The folded (conv, bn) pairs of one block, kept while their parameters do not change;
    the index tensors and zero maps of its last masks; how many of the last call's GEMMs
    ran on each library (``products``, see :func:`affine`); and at how many positions the last
    call ran each conv of the branch (``positions``, in the order of the block's branch
    convs), which the executed MAdds count."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._folded: tuple[FoldedConv, ...] = ()
        self.positions: tuple[int, ...] = ()
        self.products: Counter[str] = Counter()
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
