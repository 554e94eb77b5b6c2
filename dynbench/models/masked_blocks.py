"""Spatial DynConv blocks: a backbone's residual block with a mask unit, run densely or masked.

Where the masks apply follows the released classification code (thomasverelst/dynconv):

* Bottleneck (v1.5 layout): conv1 on the dilated mask (the input positions the strided 3x3
  reads), conv2 and conv3 on the mask, output = relu(identity + mask * branch);
* BasicBlock: conv1 on the dilated mask (at the output resolution: the positions conv2's
  3x3 window reads), conv2 on the mask;
* MobileNetV2 inverted residual with stride 1 and equal in/out channels: expand on the
  dilated mask, depthwise and project on the mask.

Stem, downsample shortcut, the other inverted residuals and the classifier stay dense.

``execution`` chooses how a block runs: ``dense`` is the plain backbone (the mask unit is
not even called), ``masked`` computes everywhere and multiplies by the masks (what the
released classification models do, so timing it measures the masks' overhead), ``sparse``
computes the active positions only, eval mode (a block in training mode runs masked and says
so in ``ran``). Sparse runs at pixel granularity (:mod:`dynbench.ops.dynconv_pixel`), at
S x S tile granularity (:mod:`dynbench.ops.dynconv_tiles`), or under ``auto`` (the default)
at whichever of the two, or the dense branch (a nearly full mask gains nothing from gathering),
a short timing on the block's masks finds fastest; the block keeps the choice per mask key and
says what it ran in ``implementation`` (``sparse/pixel``, ``sparse/tile`` or ``sparse/dense``:
the mask unit ran, the branch densely; ``+compiled-unit`` where the unit's logits came from
its compiled loop). The last
forward's masks are kept so that :func:`dynbench.measure.conditional.conditional_madds`
can count what a sparse execution must compute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.utils import benchmark

from dynbench.models.mobilenetv2 import InvertedResidual
from dynbench.models.resnet import BasicBlock, Bottleneck
from dynbench.ops.base import set_on_change
from dynbench.ops.dynconv import GRANULARITIES, MaskSource, MaskUnit, dilate
from dynbench.ops.dynconv_pixel import SparseBasicBlock, SparseBottleneck, SparseInvertedResidual
from dynbench.ops.dynconv_rows import SparseBlock, hand_on, take_over
from dynbench.ops.dynconv_tiles import (
    TiledBasicBlock,
    TiledBlock,
    TiledBottleneck,
    TiledInvertedResidual,
)
from dynbench.ops.phases import phase
from dynbench.results.names import EXECUTIONS

DILATED, MASK = "dilated", "mask"
# What ``implementation`` appends where the mask unit's logits ran compiled.
COMPILED_UNIT = "compiled-unit"


def _median_ms(call: Callable[[], object]) -> float:
    """A short timing of ``call`` (torch.utils.benchmark, the caller's thread count)."""
    timer = benchmark.Timer("call()", globals={"call": call}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=0.05).median * 1e3


class SpatialBlock(nn.Module):
    """A block, its mask unit, and which convs of its branch run on which mask."""

    operator = "dynconv"
    nonnegative_output = True  # the block's output passed a ReLU

    def __init__(
        self,
        block: nn.Module,
        channels: int,
        stride: int,
        index: int,
        pixel: SparseBlock,
        tiled: TiledBlock,
    ) -> None:
        super().__init__()
        self.block = block
        self.masker = MaskUnit(channels, stride)
        self.index = index
        self.execution = "masked"
        self.ran = "masked"  # what the last forward actually executed
        self.source = MaskSource()
        self.masks: dict[str, Tensor] = {}  # the last forward's, by DILATED / MASK
        self._fixed: tuple | None = None  # (key, mask, dilated) of an input-independent source
        self.granularity = "auto"  # of the sparse execution (GRANULARITIES)
        self.ran_granularity = ""  # what the last sparse forward ran at: pixel or tile
        self.trial_ms: dict[str, float] = {}  # auto's timing of each granularity
        self._runners: dict[str, SparseBlock] = {"pixel": pixel, "tile": tiled}
        self._choice: tuple | None = None  # (mask key, granularity) of auto's last choice
        self._dense_positions: tuple[int, ...] = ()  # of the last dense_branch call
        self._full: tuple | None = None  # (mask, dilated, each all ones?) of dense_branch

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of the last masked or sparse forward's input (in the masks' key)."""
        return tuple(self._fixed[0][2]) if self._fixed is not None else ()

    @property
    def tile(self) -> int:
        """S of the tile granularity, at the block's output resolution."""
        return self._runners["tile"].size

    @tile.setter
    def tile(self, size: int) -> None:
        self._runners["tile"].size = size

    @property
    def implementation(self) -> str:
        """What the last forward ran: dense, masked, sparse/pixel, sparse/tile or
        sparse/dense, with ``+compiled-unit`` where the mask unit's logits came from its
        compiled loop (:mod:`dynbench.ops.compiled_mask_unit`)."""
        ran = f"sparse/{self.ran_granularity}" if self.ran == "sparse" else self.ran
        return f"{ran}+{COMPILED_UNIT}" if ran != "dense" and self.masker.compiled else ran

    def branch_convs(self) -> list[tuple[nn.Conv2d, str]]:
        """(conv, DILATED or MASK) for every conv of the residual branch, in order."""
        raise NotImplementedError

    def dilation(self, x: Tensor, logits: Tensor) -> tuple[tuple[int, int], int]:
        """(size, stride) of the dilated mask: the positions, at the resolution of the conv
        that feeds the 3x3, that the 3x3 of that stride reads."""
        raise NotImplementedError

    def _masks(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The mask unit always runs (its cost is the model's); a synthetic source whose
        masks do not depend on the input (all but ``unit``) is drawn once per input shape,
        so that a call pays for a trained unit's threshold, not for drawing masks."""
        return self._masks_of(x, self.masker(x))

    def _masks_of(self, x: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
        """(mask, dilated) for the mask unit's ``logits`` on ``x`` (see :meth:`_masks`);
        the shapes in the key fix the dilated mask's size too, so a kept pair costs no more
        than the key's comparison."""
        key = (self.source, logits.shape, x.shape, logits.device, logits.dtype)
        if self.source.kind != "unit" and self._fixed is not None and self._fixed[0] == key:
            mask, dilated = self._fixed[1], self._fixed[2]
        else:
            output_size, stride = self.dilation(x, logits)
            mask = self.source.mask(logits, self.masker, self.index)
            dilated = dilate(mask, stride, output_size)
            self._fixed = (key, mask, dilated)
        masks = self.masks
        if masks.get(MASK) is not mask or masks.get(DILATED) is not dilated:
            self.masks = {MASK: mask, DILATED: dilated}  # nn.Module.__setattr__: on a change
        return mask, dilated

    def dense_branch(self, block: nn.Module, x: Tensor, mask: Tensor, dilated: Tensor) -> Tensor:
        """``auto``'s third choice: every branch conv at every position, then the masks
        applied (the masked execution on these masks), each multiplication left out where
        its mask is all ones: a full mask costs the dense block plus the mask unit. A
        channels-last input (a sparse block's output) is first made contiguous, the layout
        the dense model's convolutions run in."""
        x = x.contiguous()
        mask, dilated = self._unless_full(mask, dilated)
        if mask is None and dilated is None:
            return block(x)  # every position active: the plain block
        return self.apply_masks(x, mask, dilated)

    def _unless_full(self, mask: Tensor, dilated: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The masks, each None where it is all ones (checked once per mask tensor); and
        the dense branch's positions recorded: every branch conv at every position."""
        kept = self._full
        if kept is None or kept[0] is not mask or kept[1] is not dilated:
            kept = self._full = (mask, dilated, bool(mask.all()), bool(dilated.all()))
            self._dense_positions = tuple(
                self.masks[which].numel() for _, which in self.branch_convs()
            )
        return None if kept[2] else mask, None if kept[3] else dilated

    def masked(self, x: Tensor) -> Tensor:
        mask, dilated = self._masks(x)
        return self.apply_masks(x, mask, dilated)

    def apply_masks(self, x: Tensor, mask: Tensor | None, dilated: Tensor | None) -> Tensor:
        """The block on ``x`` with each branch conv's output multiplied by its mask, where
        the mask is not None (None: all ones)."""
        return self.after_first(x, _times(self.first(x), dilated), mask)

    def first(self, x: Tensor) -> Tensor:
        """The branch's first conv (with its batch norm and activation) on ``x``."""
        raise NotImplementedError

    def after_first(self, x: Tensor, first: Tensor, mask: Tensor | None) -> Tensor:
        """The rest of the block from the first conv's (masked) output ``first``: the
        branch's other convs, each output multiplied by ``mask`` (None: all ones), and the
        residual sum."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.execution == "dense":
            if self.masks:
                self.masks = {}
            set_on_change(self, "ran", "dense")
            return self.block(x)
        ran = "sparse" if self.execution == "sparse" and self.can_run_sparse() else "masked"
        set_on_change(self, "ran", ran)
        return self.sparse(x) if ran == "sparse" else self.masked(x)

    def can_run_sparse(self) -> bool:
        """Sparse execution folds the batch norms: eval mode only."""
        return not self.training

    def sparse_positions(self) -> tuple[int, ...]:
        """At how many positions the last sparse forward ran each branch conv, in order."""
        if self.ran_granularity == "dense":
            return self._dense_positions
        return self._runners[self.ran_granularity].positions

    def products(self) -> dict[str, int]:
        """How many GEMMs of the last sparse forward ran on each library (``onednn``,
        ``addmm``: :func:`dynbench.ops.dynconv_rows.affine`); none for the dense branch."""
        if self.ran != "sparse" or self.ran_granularity == "dense":
            return {}
        return dict(self._runners[self.ran_granularity].products)

    def sparse(self, x: Tensor) -> Tensor:
        """The block at the active positions; the map it returns is handed on to the next
        spatial block (:data:`dynbench.ops.dynconv_rows.HANDED_ON`), and the map handed on
        to it taken over: the residual sum writes the active rows into it."""
        handed_on = take_over(x)
        with phase("attention"):  # the mask unit
            mask, dilated = self._masks(x)
        granularity = self._granularity(x, mask, dilated)
        set_on_change(self, "ran_granularity", granularity)
        if granularity == "dense":
            out = self.dense_branch(self.block, x, mask, dilated)
        else:
            out = self._runners[granularity](self.block, x, mask, dilated, handed_on)
        return hand_on(out, self.nonnegative_output)

    def _granularity(self, x: Tensor, mask: Tensor, dilated: Tensor) -> str:
        """The set granularity; under ``auto``, the fastest of pixel, tile and the dense
        branch on these masks (the dense branch alone where the dilated mask is full),
        timed the first time the block meets their key (source, shapes: a ``unit`` source's
        masks change with the input, so its choice holds per input shape)."""
        if self.granularity != "auto":
            return self.granularity
        key = (self._fixed[0], self.tile)
        if self._choice is None or self._choice[0] != key:
            runs = {**self._runners, "dense": self.dense_branch}
            if bool(dilated.all()):
                # every position active: pixel and tile do the dense work plus their gathers
                # and can only win a trial by noise, so only the dense branch is timed
                runs = {"dense": self.dense_branch}
            self.trial_ms = {
                kind: _median_ms(lambda run=run: run(self.block, x, mask, dilated))
                for kind, run in runs.items()
            }
            self._choice = (key, min(self.trial_ms, key=self.trial_ms.get))
        return self._choice[1]


class SpatialBottleneck(SpatialBlock):
    def __init__(self, block: Bottleneck, index: int) -> None:
        if block.conv1.stride != (1, 1):
            raise ValueError("spatial DynConv follows the v1.5 layout: stride on the 3x3 conv")
        stride = block.conv2.stride[0]
        pixel, tiled = SparseBottleneck(), TiledBottleneck()
        super().__init__(block, block.conv1.in_channels, stride, index, pixel, tiled)

    def branch_convs(self) -> list[tuple[nn.Conv2d, str]]:
        b = self.block
        return [(b.conv1, DILATED), (b.conv2, MASK), (b.conv3, MASK)]

    def dilation(self, x: Tensor, logits: Tensor) -> tuple[tuple[int, int], int]:
        return tuple(x.shape[-2:]), self.block.conv2.stride[0]  # conv1 runs at the input's

    def first(self, x: Tensor) -> Tensor:
        b = self.block
        return b.relu(b.bn1(b.conv1(x)))

    def after_first(self, x: Tensor, first: Tensor, mask: Tensor | None) -> Tensor:
        b = self.block
        identity = b._identity(x)
        out = _times(b.relu(b.bn2(b.conv2(first))), mask)
        out = _times(b.bn3(b.conv3(out)), mask)
        return b.relu(identity + out)


class SpatialBasicBlock(SpatialBlock):
    def __init__(self, block: BasicBlock, index: int) -> None:
        stride = block.conv1.stride[0]
        pixel, tiled = SparseBasicBlock(), TiledBasicBlock()
        super().__init__(block, block.conv1.in_channels, stride, index, pixel, tiled)

    def dilation(self, x: Tensor, logits: Tensor) -> tuple[tuple[int, int], int]:
        return tuple(logits.shape[-2:]), 1  # conv1 is strided: it runs at the output's

    def branch_convs(self) -> list[tuple[nn.Conv2d, str]]:
        return [(self.block.conv1, DILATED), (self.block.conv2, MASK)]

    def first(self, x: Tensor) -> Tensor:
        b = self.block
        return b.relu(b.bn1(b.conv1(x)))

    def after_first(self, x: Tensor, first: Tensor, mask: Tensor | None) -> Tensor:
        b = self.block
        identity = b._identity(x)
        out = _times(b.bn2(b.conv2(first)), mask)
        return b.relu(identity + out)


class SpatialInvertedResidual(SpatialBlock):
    nonnegative_output = False  # input + projection: no activation after the sum

    def __init__(self, block: InvertedResidual, index: int) -> None:
        if not block.use_res_connect or block.expand_ratio == 1:
            raise ValueError("only stride-1 expanding blocks with a residual are spatial")
        pixel, tiled = SparseInvertedResidual(), TiledInvertedResidual()
        super().__init__(block, block.conv[0][0].in_channels, 1, index, pixel, tiled)

    def branch_convs(self) -> list[tuple[nn.Conv2d, str]]:
        expand, depthwise, project = (
            self.block.conv[0][0],
            self.block.conv[1][0],
            self.block.conv[2],
        )
        return [(expand, DILATED), (depthwise, MASK), (project, MASK)]

    def dilation(self, x: Tensor, logits: Tensor) -> tuple[tuple[int, int], int]:
        return tuple(x.shape[-2:]), 1

    def first(self, x: Tensor) -> Tensor:
        return self.block.conv[0](x)

    def after_first(self, x: Tensor, first: Tensor, mask: Tensor | None) -> Tensor:
        depthwise, project, bn = self.block.conv[1], self.block.conv[2], self.block.conv[3]
        out = _times(depthwise(first), mask)
        return x + _times(bn(project(out)), mask)


def _times(out: Tensor, mask: Tensor | None) -> Tensor:
    """``out * mask``; ``out`` itself for a mask of all ones (None). In place where no
    gradient is recorded: ``out`` is always a fresh output of the branch's own layers, and
    a nearly full mask's dense branch then pays one pass over it, not a new map."""
    if mask is None:
        return out
    if out.requires_grad and torch.is_grad_enabled():
        return out * mask
    return out.mul_(mask)


def spatial_blocks(model: nn.Module) -> Iterator[SpatialBlock]:
    return (m for m in model.modules() if isinstance(m, SpatialBlock))


def set_execution(model: nn.Module, execution: str) -> nn.Module:
    """Run every spatial block of ``model`` ``dense``, ``masked`` or ``sparse``."""
    if execution not in EXECUTIONS:
        raise ValueError(f"execution {execution!r}; accepted: {', '.join(EXECUTIONS)}")
    for block in spatial_blocks(model):
        block.execution = execution
    return model


def set_granularity(model: nn.Module, granularity: str, tile: int = 8) -> nn.Module:
    """Run the sparse blocks of ``model`` at ``pixel``, ``tile`` (``tile`` x ``tile``) or
    ``auto`` granularity (which then chooses afresh at the next forward)."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity {granularity!r}; accepted: {', '.join(GRANULARITIES)}")
    if not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile {tile!r}: give a whole number of positions, at least 1")
    for block in spatial_blocks(model):
        block.granularity, block.tile = granularity, tile
        block._choice = None
    return model


def set_mask_source(model: nn.Module, source: MaskSource) -> nn.Module:
    """Give every spatial block of ``model`` its masks from ``source``."""
    for block in spatial_blocks(model):
        block.source = source
    return model
