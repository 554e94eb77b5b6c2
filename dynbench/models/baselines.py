"""Registry entries for the static baselines every variant is compared with."""

from __future__ import annotations

from torch import nn

from dynbench.models.layers import LayerFactory
from dynbench.models.mobilenetv2 import MobileNetV2
from dynbench.models.registry import register
from dynbench.models.resnet import resnet

RESNET_DEPTHS = (10, 18, 34, 50, 101)
MOBILENET_WIDTHS = {"100": 1.0, "075": 0.75, "050": 0.5, "035": 0.35}


def resnet_builder(depth: int, v1: bool = False, cifar: bool = False):
    """A builder for ResNet-``depth``; variants pass their ``layers`` factory to it."""

    def build(layers: LayerFactory | None = None, **overrides) -> nn.Module:
        return resnet(depth, layers or LayerFactory(), v1=v1, cifar=cifar, **overrides)

    return build


def mobilenet_builder(width: float):
    def build(layers: LayerFactory | None = None, **overrides) -> nn.Module:
        return MobileNetV2(width, layers or LayerFactory(), **overrides)

    return build


def resnet_bases() -> list[tuple[str, int, bool]]:
    """(name, depth, v1) for every ResNet baseline, v1 layouts for the bottleneck nets."""
    bases = [(f"resnet{d}", d, False) for d in RESNET_DEPTHS]
    bases += [(f"resnet{d}_v1", d, True) for d in RESNET_DEPTHS if d >= 50]
    return bases


RESNET_BASES = tuple(name for name, _, _ in resnet_bases())
# The CIFAR-10 ResNet-18 of the DY-Conv reproductions (their training times are published);
# only its DY-Conv variant is registered beside it.
CIFAR_RESNET18 = "resnet18_cifar"
CIFAR_INPUT_SIZE = (3, 32, 32)
MOBILENET_BASES = tuple(f"mobilenetv2_{suffix}" for suffix in MOBILENET_WIDTHS)

for _name, _depth, _v1 in resnet_bases():
    _layout = (
        " (v1: stride on the first 1x1 of a bottleneck)"
        if _v1
        else " (v1.5: stride on the 3x3, as torchvision)"
        if _depth >= 50
        else ""
    )
    register(
        _name,
        resnet_builder(_depth, _v1),
        family=_name,
        operator="static",
        description=f"ResNet-{_depth}{_layout}",
        tags=("baseline", "resnet"),
    )

register(
    CIFAR_RESNET18,
    resnet_builder(18, cifar=True),
    family=CIFAR_RESNET18,
    operator="static",
    description="ResNet-18 for CIFAR-10: 3x3 stride-1 stem, no max-pool, 10 classes, 32x32",
    input_size=CIFAR_INPUT_SIZE,
    tags=("baseline", "resnet", "cifar"),
)

for _suffix, _width in MOBILENET_WIDTHS.items():
    register(
        f"mobilenetv2_{_suffix}",
        mobilenet_builder(_width),
        family=f"mobilenetv2_{_suffix}",
        operator="static",
        description=f"MobileNetV2 x{_width}",
        tags=("baseline", "mobilenetv2"),
    )
