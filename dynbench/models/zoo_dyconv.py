"""Registry entries for DY-Conv variants (Chen et al., CVPR 2020), K = 4.

ResNet: every block conv and the downsample 1x1 (stem and classifier static).
The ImageNet ResNets take the attention of the ODConv authors' code with only its
kernel-wise head (hidden width max(int(C_in / 4), 16), batch norm, ReLU): that
reproduces all three ResNet figures the ODConv paper prints for DY-Conv (ResNet-18
45.47M, ResNet-50 100.88M, and 98.83M for ResNet-50 without its classifier), where
the public DY-Conv code's int(C_in / 4) + 1 gives 100.90M / 98.85M. The CIFAR
ResNet-18 of the reproductions keeps that public code's "+ 1", which the
reproductions ran. MobileNetV2: every conv but the stem, attention hidden width
int(C_in / 4) without the "+ 1" or a norm (that reproduces the ODConv paper's
12.40M / 7.95M / 4.57M; the ResNet rule gives 12,410,868 at x1.0, 12.41M).

The DCD paper's DY-Conv rows (Chen et al.'s own figures: ResNet-10/18 18.6M /
42.7M, MobileNetV2 x1.0 / x0.5 / x0.35 11.1M / 4.0M / 2.8M) fit no single layout
of these; see the notes on those rows in ``published.csv``.
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
WITH_DOWNSAMPLE = (
    "DY-Conv on every block and downsample conv (attention as in the ODConv code: "
    "width max(int(C/4), 16), batch norm)"
)
CIFAR_PLACES = "DY-Conv on every block and downsample conv (attention width int(C/4) + 1)"
NOT_STEM = "DY-Conv on every conv but the stem (attention width int(C/4))"


ODCONV_MIN_HIDDEN = 16  # the ODConv code's floor on the attention's hidden width


def dyconv_layers(num_kernels: int, resnet: bool, odconv_attention: bool = False):
    """Layers of a DY-Conv variant; ``odconv_attention``: the ODConv code's attention
    (width floor, batch norm) in place of the public DY-Conv code's."""

    def build(spec: ConvSpec) -> DynamicConv2d:
        return DynamicConv2d(
            **spec.conv_kwargs(),
            num_kernels=num_kernels,
            hidden_offset=1 if resnet and not odconv_attention else 0,
            min_hidden=ODCONV_MIN_HIDDEN if odconv_attention else 0,
            norm=odconv_attention,
        )

    def make() -> OperatorLayers:
        return OperatorLayers(build, block_and_downsample if resnet else all_but_stem)

    return make


RESNET_4X = dyconv_layers(4, resnet=True, odconv_attention=True)
CIFAR_4X = dyconv_layers(4, resnet=True)
MOBILE_4X = dyconv_layers(4, resnet=False)

VARIANTS = (
    Variant("resnet10_dyconv_4x", "resnet10", RESNET_4X, WITH_DOWNSAMPLE),
    Variant("resnet18_dyconv_4x", "resnet18", RESNET_4X, WITH_DOWNSAMPLE),
    Variant("resnet34_dyconv_4x", "resnet34", RESNET_4X, WITH_DOWNSAMPLE),
    Variant("resnet50_dyconv_4x", "resnet50", RESNET_4X, WITH_DOWNSAMPLE),
    Variant("resnet101_dyconv_4x", "resnet101", RESNET_4X, WITH_DOWNSAMPLE),
    Variant("resnet50_v1_dyconv_4x", "resnet50_v1", RESNET_4X, WITH_DOWNSAMPLE),
    Variant("resnet101_v1_dyconv_4x", "resnet101_v1", RESNET_4X, WITH_DOWNSAMPLE),
    Variant("resnet18_cifar_dyconv_4x", "resnet18_cifar", CIFAR_4X, CIFAR_PLACES),
    Variant("mobilenetv2_100_dyconv_4x", "mobilenetv2_100", MOBILE_4X, NOT_STEM),
    Variant("mobilenetv2_075_dyconv_4x", "mobilenetv2_075", MOBILE_4X, NOT_STEM),
    Variant("mobilenetv2_050_dyconv_4x", "mobilenetv2_050", MOBILE_4X, NOT_STEM),
    Variant("mobilenetv2_035_dyconv_4x", "mobilenetv2_035", MOBILE_4X, NOT_STEM),
)
register_variants(OPERATOR, VARIANTS)
