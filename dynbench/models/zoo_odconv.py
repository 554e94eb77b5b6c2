"""Registry entries for ODConv variants (Li et al., ICLR 2022).

Placement follows the released code: in ResNet every conv of a residual block
(stem, downsample and classifier stay static); in MobileNetV2 every conv but the
stem, the classifier static. Kernel numbers n in {1, 2, 3, 4, 8}, r = 1/16.

The attention-type ablation (ResNet-18, r = 1/4) keeps only some of the four
attentions; its rows print no kernel number, and the subsets without the kernel-wise
attention reproduce with n = 1, the row with all four with n = 4.
"""

from __future__ import annotations

from dynbench.models.layers import ConvSpec
from dynbench.models.variants import (
    OperatorLayers,
    Variant,
    all_but_stem,
    block_convs,
    register_variants,
)
from dynbench.ops.odconv import (
    ALL_ATTENTIONS,
    CHANNEL,
    FILTER,
    SPATIAL,
    ODConv2d,
)

OPERATOR = "odconv"
RESNET, MOBILE = True, False  # where the operator goes: see the module docstring
BLOCK_CONVS = "ODConv (r=1/16) on every block conv"
NOT_STEM = "ODConv (r=1/16) on every conv but the stem"


def odconv_layers(
    num_kernels: int,
    resnet: bool,
    reduction: float = 1 / 16,
    attentions: frozenset[str] = ALL_ATTENTIONS,
):
    def build(spec: ConvSpec) -> ODConv2d:
        return ODConv2d(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            spec.padding,
            spec.groups,
            num_kernels=num_kernels,
            reduction=reduction,
            attentions=attentions,
        )

    def make() -> OperatorLayers:
        return OperatorLayers(build, block_convs if resnet else all_but_stem)

    return make


VARIANTS = (
    Variant("resnet10_odconv_1x", "resnet10", odconv_layers(1, RESNET), BLOCK_CONVS),
    Variant("resnet10_odconv_2x", "resnet10", odconv_layers(2, RESNET), BLOCK_CONVS),
    Variant("resnet10_odconv_3x", "resnet10", odconv_layers(3, RESNET), BLOCK_CONVS),
    Variant("resnet10_odconv_4x", "resnet10", odconv_layers(4, RESNET), BLOCK_CONVS),
    Variant("resnet10_odconv_8x", "resnet10", odconv_layers(8, RESNET), BLOCK_CONVS),
    Variant("resnet18_odconv_1x", "resnet18", odconv_layers(1, RESNET), BLOCK_CONVS),
    Variant("resnet18_odconv_2x", "resnet18", odconv_layers(2, RESNET), BLOCK_CONVS),
    Variant("resnet18_odconv_3x", "resnet18", odconv_layers(3, RESNET), BLOCK_CONVS),
    Variant("resnet18_odconv_4x", "resnet18", odconv_layers(4, RESNET), BLOCK_CONVS),
    Variant("resnet18_odconv_8x", "resnet18", odconv_layers(8, RESNET), BLOCK_CONVS),
    Variant("resnet34_odconv_1x", "resnet34", odconv_layers(1, RESNET), BLOCK_CONVS),
    Variant("resnet34_odconv_2x", "resnet34", odconv_layers(2, RESNET), BLOCK_CONVS),
    Variant("resnet34_odconv_3x", "resnet34", odconv_layers(3, RESNET), BLOCK_CONVS),
    Variant("resnet34_odconv_4x", "resnet34", odconv_layers(4, RESNET), BLOCK_CONVS),
    Variant("resnet34_odconv_8x", "resnet34", odconv_layers(8, RESNET), BLOCK_CONVS),
    Variant("resnet50_odconv_1x", "resnet50", odconv_layers(1, RESNET), BLOCK_CONVS),
    Variant("resnet50_odconv_2x", "resnet50", odconv_layers(2, RESNET), BLOCK_CONVS),
    Variant("resnet50_odconv_3x", "resnet50", odconv_layers(3, RESNET), BLOCK_CONVS),
    Variant("resnet50_odconv_4x", "resnet50", odconv_layers(4, RESNET), BLOCK_CONVS),
    Variant("resnet50_odconv_8x", "resnet50", odconv_layers(8, RESNET), BLOCK_CONVS),
    Variant("resnet101_odconv_1x", "resnet101", odconv_layers(1, RESNET), BLOCK_CONVS),
    Variant("resnet101_odconv_2x", "resnet101", odconv_layers(2, RESNET), BLOCK_CONVS),
    Variant("resnet101_odconv_3x", "resnet101", odconv_layers(3, RESNET), BLOCK_CONVS),
    Variant("resnet101_odconv_4x", "resnet101", odconv_layers(4, RESNET), BLOCK_CONVS),
    Variant("resnet101_odconv_8x", "resnet101", odconv_layers(8, RESNET), BLOCK_CONVS),
    Variant("resnet50_v1_odconv_1x", "resnet50_v1", odconv_layers(1, RESNET), BLOCK_CONVS),
    Variant("resnet50_v1_odconv_2x", "resnet50_v1", odconv_layers(2, RESNET), BLOCK_CONVS),
    Variant("resnet50_v1_odconv_3x", "resnet50_v1", odconv_layers(3, RESNET), BLOCK_CONVS),
    Variant("resnet50_v1_odconv_4x", "resnet50_v1", odconv_layers(4, RESNET), BLOCK_CONVS),
    Variant("resnet50_v1_odconv_8x", "resnet50_v1", odconv_layers(8, RESNET), BLOCK_CONVS),
    Variant("resnet101_v1_odconv_1x", "resnet101_v1", odconv_layers(1, RESNET), BLOCK_CONVS),
    Variant("resnet101_v1_odconv_2x", "resnet101_v1", odconv_layers(2, RESNET), BLOCK_CONVS),
    Variant("resnet101_v1_odconv_3x", "resnet101_v1", odconv_layers(3, RESNET), BLOCK_CONVS),
    Variant("resnet101_v1_odconv_4x", "resnet101_v1", odconv_layers(4, RESNET), BLOCK_CONVS),
    Variant("resnet101_v1_odconv_8x", "resnet101_v1", odconv_layers(8, RESNET), BLOCK_CONVS),
    Variant("mobilenetv2_100_odconv_1x", "mobilenetv2_100", odconv_layers(1, MOBILE), NOT_STEM),
    Variant("mobilenetv2_100_odconv_2x", "mobilenetv2_100", odconv_layers(2, MOBILE), NOT_STEM),
    Variant("mobilenetv2_100_odconv_3x", "mobilenetv2_100", odconv_layers(3, MOBILE), NOT_STEM),
    Variant("mobilenetv2_100_odconv_4x", "mobilenetv2_100", odconv_layers(4, MOBILE), NOT_STEM),
    Variant("mobilenetv2_100_odconv_8x", "mobilenetv2_100", odconv_layers(8, MOBILE), NOT_STEM),
    Variant("mobilenetv2_075_odconv_1x", "mobilenetv2_075", odconv_layers(1, MOBILE), NOT_STEM),
    Variant("mobilenetv2_075_odconv_2x", "mobilenetv2_075", odconv_layers(2, MOBILE), NOT_STEM),
    Variant("mobilenetv2_075_odconv_3x", "mobilenetv2_075", odconv_layers(3, MOBILE), NOT_STEM),
    Variant("mobilenetv2_075_odconv_4x", "mobilenetv2_075", odconv_layers(4, MOBILE), NOT_STEM),
    Variant("mobilenetv2_075_odconv_8x", "mobilenetv2_075", odconv_layers(8, MOBILE), NOT_STEM),
    Variant("mobilenetv2_050_odconv_1x", "mobilenetv2_050", odconv_layers(1, MOBILE), NOT_STEM),
    Variant("mobilenetv2_050_odconv_2x", "mobilenetv2_050", odconv_layers(2, MOBILE), NOT_STEM),
    Variant("mobilenetv2_050_odconv_3x", "mobilenetv2_050", odconv_layers(3, MOBILE), NOT_STEM),
    Variant("mobilenetv2_050_odconv_4x", "mobilenetv2_050", odconv_layers(4, MOBILE), NOT_STEM),
    Variant("mobilenetv2_050_odconv_8x", "mobilenetv2_050", odconv_layers(8, MOBILE), NOT_STEM),
    Variant("mobilenetv2_035_odconv_1x", "mobilenetv2_035", odconv_layers(1, MOBILE), NOT_STEM),
    Variant("mobilenetv2_035_odconv_2x", "mobilenetv2_035", odconv_layers(2, MOBILE), NOT_STEM),
    Variant("mobilenetv2_035_odconv_3x", "mobilenetv2_035", odconv_layers(3, MOBILE), NOT_STEM),
    Variant("mobilenetv2_035_odconv_4x", "mobilenetv2_035", odconv_layers(4, MOBILE), NOT_STEM),
    Variant("mobilenetv2_035_odconv_8x", "mobilenetv2_035", odconv_layers(8, MOBILE), NOT_STEM),
)
# suffix -> attentions of the ablation table's rows (s: spatial, c: input channel,
# f: output filter; the kernel-wise one only with all four)
ABLATION = {
    "s": frozenset({SPATIAL}),
    "c": frozenset({CHANNEL}),
    "f": frozenset({FILTER}),
    "sc": frozenset({SPATIAL, CHANNEL}),
    "sf": frozenset({SPATIAL, FILTER}),
    "cf": frozenset({CHANNEL, FILTER}),
    "scf": frozenset({SPATIAL, CHANNEL, FILTER}),
}
ABLATION_VARIANTS = (
    *(
        Variant(
            f"resnet18_odconv_1x_r4_{suffix}",
            "resnet18",
            odconv_layers(1, RESNET, 1 / 4, attentions),
            f"ODConv (r=1/4, n=1) with only the {', '.join(sorted(attentions))} "
            "attention(s) on every block conv",
        )
        for suffix, attentions in ABLATION.items()
    ),
    Variant(
        "resnet18_odconv_4x_r4",
        "resnet18",
        odconv_layers(4, RESNET, 1 / 4),
        "ODConv (r=1/4, n=4) with all four attentions on every block conv",
    ),
)
register_variants(OPERATOR, VARIANTS + ABLATION_VARIANTS)
