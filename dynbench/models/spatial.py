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
computes the active positions only (:mod:`dynbench.ops.dynconv_sparse`, eval mode; a block
in training mode runs masked and says so in ``ran``). The last
forward's masks are kept so that :func:`dynbench.measure.conditional.conditional_madds`
can count what a sparse execution must compute.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn

from dynbench.models.mobilenetv2 import InvertedResidual
from dynbench.models.resnet import BasicBlock, Bottleneck
from dynbench.ops.base import phase
from dynbench.ops.dynconv import EXECUTIONS, MaskSource, MaskUnit, dilate
from dynbench.ops.dynconv_sparse import (
    SparseBasicBlock,
    SparseBottleneck,
    SparseInvertedResidual,
)

DILATED, MASK = "dilated", "mask"


class SpatialBlock(nn.Module):
    """A block, its mask unit, and which convs of its branch run on which mask."""

    operator = "dynconv"

    def __init__(self, block: nn.Module, channels: int, stride: int, index: int) -> None:
        super().__init__()
        self.block = block
        self.masker = MaskUnit(channels, stride)
        self.index = index
        self.execution = "masked"
        self.ran = "masked"  # what the last forward actually executed
        self.source = MaskSource()
        self.masks: dict[str, Tensor] = {}  # the last forward's, by DILATED / MASK
        self._fixed: tuple | None = None  # (key, mask, dilated) of an input-independent source
        self.input_shape: tuple[int, ...] = ()  # of the last masked or sparse forward

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
        logits = self.masker(x)
        output_size, stride = self.dilation(x, logits)
        key = (self.source, tuple(logits.shape), logits.device, logits.dtype, output_size)
        if self.source.kind != "unit" and self._fixed is not None and self._fixed[0] == key:
            mask, dilated = self._fixed[1], self._fixed[2]
        else:
            mask = self.source.mask(logits, self.masker, self.index)
            dilated = dilate(mask, stride, output_size)
            self._fixed = (key, mask, dilated)
        self.masks = {MASK: mask, DILATED: dilated}
        self.input_shape = tuple(x.shape)
        return mask, dilated

    def forward(self, x: Tensor) -> Tensor:
        if self.execution == "dense":
            self.masks, self.ran = {}, "dense"
            return self.block(x)
        if self.execution == "sparse" and self.can_run_sparse():
            self.ran = "sparse"
            return self.sparse(x)
        self.ran = "masked"
        return self.masked(x)

    def can_run_sparse(self) -> bool:
        """Sparse execution folds the batch norms: eval mode only."""
        return not self.training

    def sparse_positions(self, conv: nn.Conv2d, which: str) -> int:
        """At how many positions the sparse execution runs ``conv``: its mask's, by default."""
        return int(self.masks[which].sum())

    def masked(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def sparse(self, x: Tensor) -> Tensor:
        with phase("attention"):  # the mask unit
            mask, dilated = self._masks(x)
        return self._sparse(self.block, x, mask, dilated)


class SpatialBottleneck(SpatialBlock):
    def __init__(self, block: Bottleneck, index: int) -> None:
        if block.conv1.stride != (1, 1):
            raise ValueError("spatial DynConv follows the v1.5 layout: stride on the 3x3 conv")
        super().__init__(block, block.conv1.in_channels, block.conv2.stride[0], index)
        self._sparse = SparseBottleneck()

    def branch_convs(self) -> list[tuple[nn.Conv2d, str]]:
        b = self.block
        return [(b.conv1, DILATED), (b.conv2, MASK), (b.conv3, MASK)]

    def dilation(self, x: Tensor, logits: Tensor) -> tuple[tuple[int, int], int]:
        return tuple(x.shape[-2:]), self.block.conv2.stride[0]  # conv1 runs at the input's

    def masked(self, x: Tensor) -> Tensor:
        b = self.block
        mask, dilated = self._masks(x)
        identity = b._identity(x)
        out = b.relu(b.bn1(b.conv1(x))) * dilated
        out = b.relu(b.bn2(b.conv2(out))) * mask
        out = b.bn3(b.conv3(out)) * mask
        return b.relu(identity + out)


class SpatialBasicBlock(SpatialBlock):
    def __init__(self, block: BasicBlock, index: int) -> None:
        super().__init__(block, block.conv1.in_channels, block.conv1.stride[0], index)
        self._sparse = SparseBasicBlock()

    def dilation(self, x: Tensor, logits: Tensor) -> tuple[tuple[int, int], int]:
        return tuple(logits.shape[-2:]), 1  # conv1 is strided: it runs at the output's

    def branch_convs(self) -> list[tuple[nn.Conv2d, str]]:
        return [(self.block.conv1, DILATED), (self.block.conv2, MASK)]

    def masked(self, x: Tensor) -> Tensor:
        b = self.block
        mask, dilated = self._masks(x)
        identity = b._identity(x)
        out = b.relu(b.bn1(b.conv1(x))) * dilated
        out = b.bn2(b.conv2(out)) * mask
        return b.relu(identity + out)


class SpatialInvertedResidual(SpatialBlock):
    def __init__(self, block: InvertedResidual, index: int) -> None:
        if not block.use_res_connect or block.expand_ratio == 1:
            raise ValueError("only stride-1 expanding blocks with a residual are spatial")
        super().__init__(block, block.conv[0][0].in_channels, 1, index)
        self._sparse = SparseInvertedResidual()

    def branch_convs(self) -> list[tuple[nn.Conv2d, str]]:
        expand, depthwise, project = (
            self.block.conv[0][0],
            self.block.conv[1][0],
            self.block.conv[2],
        )
        return [(expand, DILATED), (depthwise, MASK), (project, MASK)]

    def dilation(self, x: Tensor, logits: Tensor) -> tuple[tuple[int, int], int]:
        return tuple(x.shape[-2:]), 1

    def sparse_positions(self, conv: nn.Conv2d, which: str) -> int:
        """The depthwise conv runs over the whole expanded map (see SparseInvertedResidual)."""
        if conv is self.block.conv[1][0]:
            return self.masks[which].numel()
        return super().sparse_positions(conv, which)

    def masked(self, x: Tensor) -> Tensor:
        expand, depthwise, project, bn = self.block.conv[:4]
        mask, dilated = self._masks(x)
        out = expand(x) * dilated
        out = depthwise(out) * mask
        return x + bn(project(out)) * mask


def spatial_blocks(model: nn.Module) -> Iterator[SpatialBlock]:
    return (m for m in model.modules() if isinstance(m, SpatialBlock))


def set_execution(model: nn.Module, execution: str) -> nn.Module:
    """Run every spatial block of ``model`` ``dense``, ``masked`` or ``sparse``."""
    if execution not in EXECUTIONS:
        raise ValueError(f"execution {execution!r}; accepted: {', '.join(EXECUTIONS)}")
    for block in spatial_blocks(model):
        block.execution = execution
    return model


def set_mask_source(model: nn.Module, source: MaskSource) -> nn.Module:
    """Give every spatial block of ``model`` its masks from ``source``."""
    for block in spatial_blocks(model):
        block.source = source
    return model
