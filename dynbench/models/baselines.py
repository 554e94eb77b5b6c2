"""Registry entries for the static baselines every variant is compared with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from dynbench.models.layers import LayerFactory
from dynbench.models.mobilenetv2 import MobileNetV2
from dynbench.models.registry import DEFAULT_INPUT_SIZE, register
from dynbench.models.resnet import resnet


def resnet_builder(depth: int, v1: bool = False, cifar: bool = False):
    """A builder for ResNet-``depth``; variants pass their ``layers`` factory to it."""

    def build(layers: LayerFactory | None = None, **overrides) -> nn.Module:
        return resnet(depth, layers or LayerFactory(), v1=v1, cifar=cifar, **overrides)

    return build


def mobilenet_builder(width: float):
    def build(layers: LayerFactory | None = None, **overrides) -> nn.Module:
        return MobileNetV2(width, layers or LayerFactory(), **overrides)

    return build


@dataclass(frozen=True)
class Baseline:
    """One registry row of a static network; its name is also its family's name."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    tags: tuple[str, ...]
    input_size: tuple[int, int, int] = DEFAULT_INPUT_SIZE


V1 = " (v1: stride on the first 1x1 of a bottleneck)"
V15 = " (v1.5: stride on the 3x3, as torchvision)"
RESNET, MOBILENET = ("baseline", "resnet"), ("baseline", "mobilenetv2")

BASELINES = (
    Baseline("resnet10", resnet_builder(10), "ResNet-10", RESNET),
    Baseline("resnet18", resnet_builder(18), "ResNet-18", RESNET),
    Baseline("resnet34", resnet_builder(34), "ResNet-34", RESNET),
    Baseline("resnet50", resnet_builder(50), "ResNet-50" + V15, RESNET),
    Baseline("resnet101", resnet_builder(101), "ResNet-101" + V15, RESNET),
    Baseline("resnet50_v1", resnet_builder(50, v1=True), "ResNet-50" + V1, RESNET),
    Baseline("resnet101_v1", resnet_builder(101, v1=True), "ResNet-101" + V1, RESNET),
    # The CIFAR-10 ResNet-18 of the DY-Conv reproductions (their training times are published).
    Baseline(
        "resnet18_cifar",
        resnet_builder(18, cifar=True),
        "ResNet-18 for CIFAR-10: 3x3 stride-1 stem, no max-pool, 10 classes, 32x32",
        (*RESNET, "cifar"),
        (3, 32, 32),
    ),
    Baseline("mobilenetv2_100", mobilenet_builder(1.0), "MobileNetV2 x1.0", MOBILENET),
    Baseline("mobilenetv2_075", mobilenet_builder(0.75), "MobileNetV2 x0.75", MOBILENET),
    Baseline("mobilenetv2_050", mobilenet_builder(0.5), "MobileNetV2 x0.5", MOBILENET),
    Baseline("mobilenetv2_035", mobilenet_builder(0.35), "MobileNetV2 x0.35", MOBILENET),
)

for _row in BASELINES:
    register(
        _row.name,
        _row.builder,
        family=_row.name,
        operator="static",
        description=_row.description,
        input_size=_row.input_size,
        tags=_row.tags,
    )
