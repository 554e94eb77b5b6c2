"""Registry entries for the DCD variants (Li et al., ICLR 2021).

Layer choices and sizes are the released code's (github.com/liyunsheng13/dcd,
``models/imagenet/resnet_dcd.py`` and ``mobilenetv2_dcd.py``), because the
parameter counts the ODConv paper prints for DCD were produced with it:

* ResNet: every conv inside a residual block becomes a DCD conv (3 x 3 ones with
  channel fusion alone); the stem and downsample convs stay static. Basic blocks
  pool the branch input to 2 x 2 and use L = isqrt(4 C_in); bottlenecks pool to
  1 x 1 and use L = isqrt(C_in); r = 16 for both.
* MobileNetV2: the expansion and projection 1x1 convs of every t = 6 block; the
  t = 1 block, the depthwise convs, the stem and the head stay static. The latent
  size follows the released ``DYModule`` rule below; r ("fc_squeeze") is 16 at
  x1.0 and x0.75 and 8 at x0.5 and x0.35 (paper Sec. 5.1).
* The classifier is the dynamic ``DYCls`` (L = 32, squeeze = 32) in every model.

The DCD paper's own Table 4 is not reproduced by the released code except where
noted per model below. Its ResNet figures look classifier-free and truncated (static
ResNet-18 11.1M = 11,176,512), which fits ResNet-18's 14.0M (14,059,644 here) but
not ResNet-10's 6.5M or ResNet-50's 30.7M. No MAdds figure of either paper is
reproduced by these shapes under any split of the operator's costs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from dynbench.models.layers import BLOCK, ConvSpec, LinearSpec
from dynbench.models.mobilenetv2 import INVERTED_RESIDUAL_SETTING
from dynbench.models.variants import OperatorLayers, Variant, block_convs, register_variants
from dynbench.ops.dcd import DCDConv2d
from dynbench.ops.dcd_linear import DCDLinear

RESNET_REDUCTION = 16
CLASSIFIER_LATENT = 32
CLASSIFIER_SQUEEZE = 32
MIN_LATENT = 4  # the released MobileNetV2 rule's floor on L


def dcd_classifier(spec: LinearSpec) -> DCDLinear:
    """The released ``DYCls``: fixed L = 32 and a 32-unit branch whatever the width."""
    return DCDLinear(
        spec.in_features,
        spec.out_features,
        bias=spec.bias,
        latent_dim=CLASSIFIER_LATENT,
        squeeze=CLASSIFIER_SQUEEZE,
    )


def dcd_conv(
    spec: ConvSpec, latent_dim: int, reduction: int, pool_size: int, **options: object
) -> DCDConv2d:
    """A DCD conv in ``spec``'s place; ``options``: DCDConv2d's others (squeeze, switches)."""
    return DCDConv2d(
        spec.in_channels,
        spec.out_channels,
        spec.kernel_size,
        spec.stride,
        spec.padding,
        bias=spec.bias,
        latent_dim=latent_dim,
        reduction=reduction,
        pool_size=pool_size,
        **options,
    )


def resnet_basic_conv(spec: ConvSpec) -> DCDConv2d:
    """Released ``conv_basic_dy``: 2 x 2 pooled branch (4 C_in features), L = isqrt(4 C_in)."""
    return dcd_conv(spec, math.isqrt(4 * spec.in_channels), RESNET_REDUCTION, 2)


def resnet_bottleneck_conv(spec: ConvSpec) -> DCDConv2d:
    """Released ``conv_dy``: globally pooled branch, L = isqrt(C_in)."""
    return dcd_conv(spec, math.isqrt(spec.in_channels), RESNET_REDUCTION, 1)


def mobilenet_latent(in_channels: int, out_channels: int) -> tuple[int, int]:
    """(L, pool size) of the released ``DYModule`` for a 1x1 conv.

    Expanding convs pool to 2 x 2 and start from r = 8, projecting ones pool globally
    and start from r = 2; L = min(C_in * pool^2, C_out) // r, doubling r while
    L^2 exceeds twice the pooled features, and never below 4.
    """
    pool, reduction = (2, 8) if in_channels < out_channels else (1, 2)
    pooled = in_channels * pool**2

    def latent() -> int:
        return min(pooled // reduction, out_channels // reduction)

    while latent() ** 2 > 2 * pooled:
        reduction *= 2
    return max(latent(), MIN_LATENT), pool


def mobilenet_conv(fc_squeeze: int) -> Callable[[ConvSpec], DCDConv2d]:
    def build(spec: ConvSpec) -> DCDConv2d:
        latent, pool = mobilenet_latent(spec.in_channels, spec.out_channels)
        return dcd_conv(spec, latent, fc_squeeze, pool)

    return build


def _expanded_blocks() -> frozenset[int]:
    """Global indices of the MobileNetV2 blocks with expansion t != 1."""
    indices, start = [], 0
    for t, _, n, _ in INVERTED_RESIDUAL_SETTING:
        if t != 1:
            indices.extend(range(start, start + n))
        start += n
    return frozenset(indices)


EXPANDED_BLOCKS = _expanded_blocks()


def expanded_block_pointwise(spec: ConvSpec) -> bool:
    """1x1 convs of the t = 6 blocks: the released code leaves the t = 1 block static."""
    return spec.role == BLOCK and spec.is_pointwise and spec.block_index in EXPANDED_BLOCKS


def resnet_layers(build_conv: Callable[[ConvSpec], DCDConv2d]) -> Callable[[], OperatorLayers]:
    def make() -> OperatorLayers:
        return OperatorLayers(build_conv, block_convs, dcd_classifier)

    return make


def mobilenet_layers(fc_squeeze: int) -> Callable[[], OperatorLayers]:
    def make() -> OperatorLayers:
        return OperatorLayers(mobilenet_conv(fc_squeeze), expanded_block_pointwise, dcd_classifier)

    return make


RESNET_PLACES = (
    "every block conv DCD (3x3: static conv + 1x1 dynamic residual, 'channel fusion "
    "alone'), stem and downsample static, DYCls classifier; shapes of the released code"
)
MOBILE_PLACES = (
    "DCD on the expansion and projection 1x1 convs of the t=6 blocks, DYCls classifier; "
    "shapes of the released code"
)
BASIC, BOTTLENECK = resnet_layers(resnet_basic_conv), resnet_layers(resnet_bottleneck_conv)

VARIANTS = (
    Variant("resnet10_dcd", "resnet10", BASIC, RESNET_PLACES),
    Variant("resnet18_dcd", "resnet18", BASIC, RESNET_PLACES),
    Variant("resnet50_v1_dcd", "resnet50_v1", BOTTLENECK, RESNET_PLACES),
    Variant("resnet50_dcd", "resnet50", BOTTLENECK, RESNET_PLACES),
    Variant("mobilenetv2_100_dcd", "mobilenetv2_100", mobilenet_layers(16), MOBILE_PLACES),
    Variant("mobilenetv2_075_dcd", "mobilenetv2_075", mobilenet_layers(16), MOBILE_PLACES),
    Variant("mobilenetv2_050_dcd", "mobilenetv2_050", mobilenet_layers(8), MOBILE_PLACES),
    Variant("mobilenetv2_035_dcd", "mobilenetv2_035", mobilenet_layers(8), MOBILE_PLACES),
)
register_variants("dcd", VARIANTS)
