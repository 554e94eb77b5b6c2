"""Registry entries for Context-Gated Convolution (Lin et al., ECCV 2020).

As in the authors' released ResNet: every convolution with k > 1 (the 7 x 7 stem and
every 3 x 3 block conv) becomes a CGC conv; 1 x 1 convs (the bottlenecks' and the
downsample shortcuts) and the classifier stay static. The ODConv paper compares CGC on
ResNet-18 and ResNet-50; its ResNet-50 figures are on the v1 layout, so that row maps
to ``resnet50_v1_cgc``. The released layers add 32,919 params to ResNet-50 (25.59M, as
printed) and 32,279 to ResNet-18 (11.72M where 11.69M is printed).
"""

from __future__ import annotations

from dynbench.models.layers import ConvSpec
from dynbench.models.variants import OperatorLayers, Variant, register_variants
from dynbench.ops.cgc import ContextGatedConv2d

PLACES = "CGC on every k > 1 conv (stem and 3x3 block convs), 1x1 convs static"


def gated(spec: ConvSpec) -> bool:
    return spec.kernel_size > 1 and spec.groups == 1


def cgc_conv(spec: ConvSpec) -> ContextGatedConv2d:
    return ContextGatedConv2d(
        spec.in_channels,
        spec.out_channels,
        spec.kernel_size,
        spec.stride,
        spec.padding,
        spec.bias,
    )


def cgc_layers() -> OperatorLayers:
    return OperatorLayers(cgc_conv, gated)


VARIANTS = (
    Variant("resnet18_cgc", "resnet18", cgc_layers, PLACES),
    Variant("resnet50_v1_cgc", "resnet50_v1", cgc_layers, PLACES),
    Variant("resnet50_cgc", "resnet50", cgc_layers, PLACES),
)
register_variants("cgc", VARIANTS)
