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
from dynbench.models.variants import OperatorLayers, Variant, register_variants
from dynbench.ops.attention import CBAM, ECA, SqueezeExcite

SE_NOTE = "Squeeze-and-Excitation (r=16) on each residual branch"
CBAM_NOTE = "CBAM: channel (r=16) then 7x7 spatial attention, on each residual branch"
ECA_NOTE = "ECA: 1D conv across channels with adaptive k, on each residual branch"


def attention_layers(module: Callable[[int], nn.Module]):
    """Static convs plus ``module(channels)`` on every residual branch."""

    def build(spec: BlockSpec) -> nn.Module:
        return module(spec.channels)

    def make() -> OperatorLayers:
        return OperatorLayers(attention=build)

    return make


SE_LAYERS = attention_layers(SqueezeExcite)
CBAM_LAYERS = attention_layers(CBAM)
ECA_LAYERS = attention_layers(ECA)

VARIANTS = (
    Variant("resnet18_se", "resnet18", SE_LAYERS, SE_NOTE, operator="se"),
    Variant("resnet18_cbam", "resnet18", CBAM_LAYERS, CBAM_NOTE, operator="cbam"),
    Variant("resnet18_eca", "resnet18", ECA_LAYERS, ECA_NOTE, operator="eca"),
    Variant("resnet50_v1_se", "resnet50_v1", SE_LAYERS, SE_NOTE, operator="se"),
    Variant("resnet50_v1_cbam", "resnet50_v1", CBAM_LAYERS, CBAM_NOTE, operator="cbam"),
    Variant("resnet50_v1_eca", "resnet50_v1", ECA_LAYERS, ECA_NOTE, operator="eca"),
    Variant("resnet50_se", "resnet50", SE_LAYERS, SE_NOTE, operator="se"),
    Variant("resnet50_cbam", "resnet50", CBAM_LAYERS, CBAM_NOTE, operator="cbam"),
    Variant("resnet50_eca", "resnet50", ECA_LAYERS, ECA_NOTE, operator="eca"),
    Variant("resnet101_v1_se", "resnet101_v1", SE_LAYERS, SE_NOTE, operator="se"),
    Variant("resnet101_v1_cbam", "resnet101_v1", CBAM_LAYERS, CBAM_NOTE, operator="cbam"),
    Variant("resnet101_v1_eca", "resnet101_v1", ECA_LAYERS, ECA_NOTE, operator="eca"),
    Variant("resnet101_se", "resnet101", SE_LAYERS, SE_NOTE, operator="se"),
    Variant("resnet101_cbam", "resnet101", CBAM_LAYERS, CBAM_NOTE, operator="cbam"),
    Variant("resnet101_eca", "resnet101", ECA_LAYERS, ECA_NOTE, operator="eca"),
    Variant("mobilenetv2_100_se", "mobilenetv2_100", SE_LAYERS, SE_NOTE, operator="se"),
    Variant("mobilenetv2_100_cbam", "mobilenetv2_100", CBAM_LAYERS, CBAM_NOTE, operator="cbam"),
    Variant("mobilenetv2_100_eca", "mobilenetv2_100", ECA_LAYERS, ECA_NOTE, operator="eca"),
)
register_variants("", VARIANTS)
