"""ResNet-10/18/34/50/101 built through a :class:`LayerFactory`, ImageNet or CIFAR layout.

With the static factory the modules, parameter order and counts equal
torchvision's ``resnet*`` (11,689,512 params for ResNet-18). Bottleneck
networks come in two layouts with identical parameters: v1.5 (torchvision:
stride on the 3x3 conv) and v1 (He et al. 2016: stride on the first 1x1), whose
conv+linear MAdds differ (ResNet-50: 4.089G vs 3.858G); the ODConv paper's
ResNet-50/101 figures are v1's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dynbench.models.layers import (
    DOWNSAMPLE,
    STEM,
    BlockSpec,
    ConvSpec,
    LayerFactory,
    LinearSpec,
    run_routed,
    static_modules,
)


def block_conv(layers: LayerFactory, block_index: int, num_blocks: int):
    """``conv(cin, cout, k, stride, padding)`` for the convs of one block."""

    def conv(cin: int, cout: int, k: int, stride: int, padding: int) -> nn.Module:
        spec = ConvSpec(
            cin, cout, k, stride, padding, block_index=block_index, num_blocks=num_blocks
        )
        return layers.conv(spec)

    return conv


@dataclass(frozen=True)
class BlockPlace:
    """Where a residual block sits: its input width and stride, its index among the
    network's ``num_blocks`` blocks."""

    inplanes: int
    stride: int
    block_index: int
    num_blocks: int

    def spec(self, out_planes: int) -> BlockSpec:
        """The block's :class:`BlockSpec` for ``out_planes`` output channels."""
        return BlockSpec(out_planes, self.inplanes, self.block_index, self.num_blocks)


class _Residual(nn.Module):
    """What both blocks share: the branch attention a variant may add, and the residual."""

    def _attach(self, layers: LayerFactory, spec: BlockSpec, downsample: nn.Module | None) -> None:
        # registered after the block's own layers, in torchvision's order
        self.attention = layers.branch_attention(spec)
        self.downsample = downsample

    def _identity(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)

    def _add(self, out: Tensor, identity: Tensor) -> Tensor:
        if self.attention is not None:
            out = self.attention(out)
        return self.relu(out + identity)


class BasicBlock(_Residual):
    expansion = 1

    def __init__(
        self, layers: LayerFactory, place: BlockPlace, planes: int, downsample: nn.Module | None
    ) -> None:
        super().__init__()
        conv = block_conv(layers, place.block_index, place.num_blocks)
        self.conv1 = conv(place.inplanes, planes, 3, place.stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self._attach(layers, place.spec(planes), downsample)

    def forward(self, x: Tensor, routing: Tensor | None = None) -> Tensor:
        identity = self._identity(x)
        out = self.relu(self.bn1(run_routed(self.conv1, x, routing)))
        out = self.bn2(run_routed(self.conv2, out, routing))
        return self._add(out, identity)


class Bottleneck(_Residual):
    expansion = 4

    def __init__(
        self,
        layers: LayerFactory,
        place: BlockPlace,
        planes: int,
        downsample: nn.Module | None,
        stride_on_3x3: bool = True,
    ) -> None:
        super().__init__()
        conv = block_conv(layers, place.block_index, place.num_blocks)
        out_planes = planes * self.expansion
        s1, s2 = (1, place.stride) if stride_on_3x3 else (place.stride, 1)
        self.conv1 = conv(place.inplanes, planes, 1, s1, 0)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, s2, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv(planes, out_planes, 1, 1, 0)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self._attach(layers, place.spec(out_planes), downsample)

    def forward(self, x: Tensor, routing: Tensor | None = None) -> Tensor:
        identity = self._identity(x)
        out = self.relu(self.bn1(run_routed(self.conv1, x, routing)))
        out = self.relu(self.bn2(run_routed(self.conv2, out, routing)))
        out = self.bn3(run_routed(self.conv3, out, routing))
        return self._add(out, identity)


class ResNet(nn.Module):
    """A ResNet whose convolutions and classifier come from ``layers``."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        depths: list[int],
        layers: LayerFactory | None = None,
        num_classes: int = 1000,
        stride_on_3x3: bool = True,
        cifar_stem: bool = False,
    ) -> None:
        super().__init__()
        layers = layers or LayerFactory()
        self.inplanes = 64
        # ImageNet: 7x7 stride-2 conv then a stride-2 max-pool. CIFAR (32x32 inputs, as in the
        # DY-Conv reproductions): one 3x3 stride-1 conv and no pooling.
        stem = (
            ConvSpec(3, 64, 3, 1, 1, role=STEM)
            if cifar_stem
            else ConvSpec(3, 64, 7, 2, 3, role=STEM)
        )
        self.conv1 = layers.conv(stem)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else StemPool(kernel_size=3, stride=2, padding=1)
        num_blocks = sum(depths)
        block_index = 0
        stages = []
        for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
            stage_blocks = []
            for i in range(depth):
                stride = 2 if (stage > 0 and i == 0) else 1
                out_planes = planes * block.expansion
                downsample = None
                if stride != 1 or self.inplanes != out_planes:
                    downsample = nn.Sequential(
                        layers.conv(
                            ConvSpec(
                                self.inplanes,
                                out_planes,
                                1,
                                stride,
                                0,
                                role=DOWNSAMPLE,
                                block_index=block_index,
                                num_blocks=num_blocks,
                            )
                        ),
                        nn.BatchNorm2d(out_planes),
                    )
                kwargs = {"stride_on_3x3": stride_on_3x3} if block is Bottleneck else {}
                place = BlockPlace(self.inplanes, stride, block_index, num_blocks)
                module = block(layers, place, planes, downsample, **kwargs)
                stage_blocks.append(layers.wrap_block(module, place.spec(out_planes)))
                self.inplanes = out_planes
                block_index += 1
            stages.append(nn.Sequential(*stage_blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = layers.linear(LinearSpec(512 * block.expansion, num_classes))
        _init_static(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class StemPool(nn.MaxPool2d):
    """The ImageNet stem's max-pool, run on a channels-last copy of a CPU map and handed back
    in the input's layout: the same values and the same module (no parameters) as
    ``nn.MaxPool2d``.

    PyTorch's CPU max-pool walks an NCHW map one output at a time, while its channels-last
    kernel vectorises over channels; on the stem's 64-channel map at 112 x 112 the copies in
    and out cost a fraction of what the NCHW kernel does (``scripts/stem-pool.py`` times
    both). The pool runs before any block, so a static network and each of its dynamic
    variants gain the same; left as it was, it was a fixed cost common to both sides of
    every ratio."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


def _init_static(model: nn.Module) -> None:
    """torchvision's initialisation of the static layers (dynamic ops init themselves)."""
    for m in static_modules(model):
        if type(m) is nn.Conv2d:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


RESNET_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    10: (BasicBlock, [1, 1, 1, 1]),
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
}


def resnet(
    depth: int, layers: LayerFactory | None = None, v1: bool = False, cifar: bool = False, **kwargs
) -> ResNet:
    """ResNet of the given depth; ``v1`` puts a bottleneck's stride on its first 1x1;
    ``cifar`` gives the 32x32 layout (3x3 stem, no max-pool) with 10 classes by default."""
    block, depths = RESNET_DEPTHS[depth]
    if cifar:
        kwargs = {"num_classes": 10, **kwargs}
    return ResNet(block, depths, layers, stride_on_3x3=not v1, cifar_stem=cifar, **kwargs)
