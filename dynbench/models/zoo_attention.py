"""Registry entries for the attention variants: ``<base>_se``, ``<base>_cbam``, ``<base>_eca``.

The ODConv paper compares against SE, CBAM and ECA on ResNet-18/50/101 with the
module on every block's residual branch, before the addition; its ResNet-50/101
figures are on the v1 layout, so those rows map to ``resnet50_v1_*`` and
``resnet101_v1_*``. The v1.5 layouts and MobileNetV2 x1.0 (module after the
projection's batch norm) are registered too, for comparison with the other
operators on the same backbones.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dynbench.models.layers import BlockSpec
from dynbench.models.variants import OperatorLayers, register_variant
from dynbench.ops.attention import CBAM, ECA, SqueezeExcite

BASES = ("resnet18", "resnet50_v1", "resnet50", "resnet101_v1", "resnet101", "mobilenetv2_100")

ATTENTIONS: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "se": (SqueezeExcite, "Squeeze-and-Excitation (r=16)"),
    "cbam": (CBAM, "CBAM: channel (r=16) then 7x7 spatial attention"),
    "eca": (ECA, "ECA: 1D conv across channels, adaptive k"),
}


def attention_layers(suffix: str) -> OperatorLayers:
    """Static convs plus the ``suffix`` module on every residual branch."""
    module, _ = ATTENTIONS[suffix]

    def build(spec: BlockSpec) -> nn.Module:
        return module(spec.channels)

    return OperatorLayers(suffix, attention=build)


for _base in BASES:
    for _suffix, (_, _what) in ATTENTIONS.items():
        register_variant(
            _base,
            _suffix,
            lambda suffix=_suffix: attention_layers(suffix),
            operator=_suffix,
            description=f"{_base} + {_what} on each residual branch",
        )
