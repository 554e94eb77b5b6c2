"""Registry entries for DY-Conv variants (Chen et al., CVPR 2020), K = 4.

ResNet: every block conv and the downsample 1x1 (stem and classifier static),
which gives the 45.47M the ODConv paper prints for ResNet-18. MobileNetV2:
every conv but the stem, attention hidden width int(C_in / 4) without the "+ 1"
(that reproduces the ODConv paper's 12.40M / 7.95M / 4.57M).
"""

from __future__ import annotations

from dynbench.models.baselines import CIFAR_RESNET18, MOBILENET_BASES, RESNET_BASES
from dynbench.models.layers import ConvSpec
from dynbench.models.variants import (
    OperatorLayers,
    all_but_stem,
    block_and_downsample,
    register_variant,
)
from dynbench.ops.dyconv import DynamicConv2d


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
        return OperatorLayers("dyconv", build, block_and_downsample if resnet else all_but_stem)

    return make


for _base in (*RESNET_BASES, CIFAR_RESNET18, *MOBILENET_BASES):
    _resnet = _base.startswith("resnet")
    register_variant(
        _base,
        "dyconv_4x",
        dyconv_layers(4, _resnet),
        operator="dyconv",
        kernels=4,
        description="DY-Conv K=4 on every "
        + ("block and downsample conv" if _resnet else "conv but the stem"),
    )
