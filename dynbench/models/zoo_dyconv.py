"""Registry entries for DY-Conv variants (Chen et al., CVPR 2020), K = 4.

ResNet: every block conv and the downsample 1x1 (stem and classifier static),
which gives the 45.47M the ODConv paper prints for ResNet-18. MobileNetV2:
every conv but the stem, attention hidden width int(C_in / 4) without the "+ 1"
(that reproduces the ODConv paper's 12.40M / 7.95M / 4.57M).
"""

from __future__ import annotations

from dynbench.models.layers import ConvSpec
from dynbench.models.variants import (
    OperatorLayers,
    Variant,
    all_but_stem,
    block_and_downsample,
    register_variants,
)
from dynbench.ops.dyconv import DynamicConv2d

OPERATOR = "dyconv"
WITH_DOWNSAMPLE = "DY-Conv on every block and downsample conv"
NOT_STEM = "DY-Conv on every conv but the stem (attention width int(C/4))"


def dyconv_layers(num_kernels: int, resnet: bool):
    def build(spec: ConvSpec) -> DynamicConv2d:
        return DynamicConv2d(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            spec.padding,
            spec.groups,
            spec.bias,
            num_kernels=num_kernels,
            hidden_offset=1 if resnet else 0,
        )

    def make() -> OperatorLayers:
        return OperatorLayers(build, block_and_downsample if resnet else all_but_stem)

    return make


RESNET_4X, MOBILE_4X = dyconv_layers(4, resnet=True), dyconv_layers(4, resnet=False)

VARIANTS = (
    Variant("resnet10_dyconv_4x", "resnet10", RESNET_4X, WITH_DOWNSAMPLE, 4),
    Variant("resnet18_dyconv_4x", "resnet18", RESNET_4X, WITH_DOWNSAMPLE, 4),
    Variant("resnet34_dyconv_4x", "resnet34", RESNET_4X, WITH_DOWNSAMPLE, 4),
    Variant("resnet50_dyconv_4x", "resnet50", RESNET_4X, WITH_DOWNSAMPLE, 4),
    Variant("resnet101_dyconv_4x", "resnet101", RESNET_4X, WITH_DOWNSAMPLE, 4),
    Variant("resnet50_v1_dyconv_4x", "resnet50_v1", RESNET_4X, WITH_DOWNSAMPLE, 4),
    Variant("resnet101_v1_dyconv_4x", "resnet101_v1", RESNET_4X, WITH_DOWNSAMPLE, 4),
    Variant("resnet18_cifar_dyconv_4x", "resnet18_cifar", RESNET_4X, WITH_DOWNSAMPLE, 4),
    Variant("mobilenetv2_100_dyconv_4x", "mobilenetv2_100", MOBILE_4X, NOT_STEM, 4),
    Variant("mobilenetv2_075_dyconv_4x", "mobilenetv2_075", MOBILE_4X, NOT_STEM, 4),
    Variant("mobilenetv2_050_dyconv_4x", "mobilenetv2_050", MOBILE_4X, NOT_STEM, 4),
    Variant("mobilenetv2_035_dyconv_4x", "mobilenetv2_035", MOBILE_4X, NOT_STEM, 4),
)
register_variants(OPERATOR, VARIANTS)
