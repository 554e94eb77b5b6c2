"""Registry entries for the CondConv variants (8 experts).

Every CondConv block shares one routing function, computed from the block input
(:class:`~dynbench.ops.condconv.CondConvBlock`), and the classifier is a CondConv
classifier with its own routing. The layer placement is the one that reproduces
the published parameter counts exactly:

* ``*_condconv_8x`` (the ODConv paper's CondConv rows): the last 3 residual
  blocks of ResNet-18/50 (downsample convs static) or the last 6 inverted
  residuals of MobileNetV2 (head conv static), plus a bias-free classifier.
  ResNet-18 81,345,120 (81.35M), ResNet-50 129,864,800 (129.86M), MobileNetV2
  x1.0 / x0.75 / x0.5 22,877,496 / 17,513,176 / 13,612,920 (22.88M / 17.51M /
  13.61M). With a routing function per conv, or with a classifier bias, none of
  them rounds to the printed figure.
* ``mobilenetv2_*_condconv_8x_os16`` (the CondConv paper's MobileNetV2 rows, as
  reprinted by DCD): every layer at output stride 16 and 32, i.e. the last 11
  inverted residuals and the head conv, plus a classifier with bias: 27,457,768
  (27.5M) at x1.0 and 15,509,256 (15.5M) at x0.5.
"""

from __future__ import annotations

from collections.abc import Callable

from dynbench.models.layers import HEAD, BlockSpec, ConvSpec, LinearSpec
from dynbench.models.variants import OperatorLayers, Variant, last_blocks, register_variants
from dynbench.ops.condconv import CondConv2d, CondConvBlock, CondLinear

NUM_KERNELS = 8


def condconv_layers(
    num_blocks: int,
    head: bool = False,
    classifier_bias: bool = False,
    num_kernels: int = NUM_KERNELS,
) -> Callable[[], OperatorLayers]:
    """A factory maker: CondConv in the last ``num_blocks`` blocks (+ head) and classifier."""
    in_last_blocks = last_blocks(num_blocks)

    def select(spec: ConvSpec) -> bool:
        return in_last_blocks(spec) or (head and spec.role == HEAD)

    def build_conv(spec: ConvSpec) -> CondConv2d:
        return CondConv2d(
            **spec.conv_kwargs(),
            num_kernels=num_kernels,
            # a block's convs are routed by their CondConvBlock, the head conv by itself
            shared_routing=spec.block_index >= 0,
        )

    def build_linear(spec: LinearSpec) -> CondLinear:
        return CondLinear(spec.in_features, spec.out_features, classifier_bias, num_kernels)

    def wrap(block, spec: BlockSpec):
        if spec.block_index >= spec.num_blocks - num_blocks:
            return CondConvBlock(block, spec.in_channels, num_kernels)
        return block

    def make() -> OperatorLayers:
        return OperatorLayers(build_conv, select, build_linear, wrap)

    return make


LAST_BLOCKS_RESNET = (
    "CondConv (8 experts, routing shared per block) in the convs of the last 3 blocks "
    "(downsample static) and the classifier; the ODConv paper's configuration"
)
LAST_BLOCKS_MOBILE = (
    "CondConv (8 experts, routing shared per block) in the last 6 inverted residuals "
    "and the classifier; the ODConv paper's configuration"
)
OUTPUT_STRIDE_16 = (
    "CondConv (8 experts) in every layer at output stride 16 and 32 (last 11 inverted "
    "residuals, head conv) and the classifier with bias; the CondConv paper's rows"
)
RESNET_8X, MOBILE_8X = condconv_layers(3), condconv_layers(6)
OS16_8X = condconv_layers(11, head=True, classifier_bias=True)

VARIANTS = (
    Variant("resnet18_condconv_8x", "resnet18", RESNET_8X, LAST_BLOCKS_RESNET),
    Variant("resnet50_v1_condconv_8x", "resnet50_v1", RESNET_8X, LAST_BLOCKS_RESNET),
    Variant("resnet50_condconv_8x", "resnet50", RESNET_8X, LAST_BLOCKS_RESNET),
    Variant("mobilenetv2_100_condconv_8x", "mobilenetv2_100", MOBILE_8X, LAST_BLOCKS_MOBILE),
    Variant("mobilenetv2_075_condconv_8x", "mobilenetv2_075", MOBILE_8X, LAST_BLOCKS_MOBILE),
    Variant("mobilenetv2_050_condconv_8x", "mobilenetv2_050", MOBILE_8X, LAST_BLOCKS_MOBILE),
    Variant("mobilenetv2_100_condconv_8x_os16", "mobilenetv2_100", OS16_8X, OUTPUT_STRIDE_16),
    Variant("mobilenetv2_050_condconv_8x_os16", "mobilenetv2_050", OS16_8X, OUTPUT_STRIDE_16),
)
register_variants("condconv", VARIANTS)
