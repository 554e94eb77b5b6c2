"""Registry entries for ODConv variants (Li et al., ICLR 2022).

Placement follows the released code: in ResNet every conv of a residual block
(stem, downsample and classifier stay static); in MobileNetV2 every conv but the
stem, the classifier static. Kernel numbers n in {1, 2, 3, 4, 8}, r = 1/16.
"""

from __future__ import annotations

from dynbench.models.baselines import MOBILENET_BASES, RESNET_BASES
from dynbench.models.layers import ConvSpec
from dynbench.models.variants import OperatorLayers, all_but_stem, block_convs, register_variant
from dynbench.ops.odconv import ODConv2d

KERNEL_NUMS = (1, 2, 3, 4, 8)


def odconv_layers(kernel_num: int, resnet: bool, reduction: float = 1 / 16):
    def build(spec: ConvSpec) -> ODConv2d:
        return ODConv2d(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            spec.padding,
            spec.groups,
            kernel_num=kernel_num,
            reduction=reduction,
        )

    def make() -> OperatorLayers:
        return OperatorLayers("odconv", build, block_convs if resnet else all_but_stem)

    return make


for _base in RESNET_BASES + MOBILENET_BASES:
    _resnet = _base.startswith("resnet")
    for _n in KERNEL_NUMS:
        register_variant(
            _base,
            f"odconv_{_n}x",
            odconv_layers(_n, _resnet),
            operator="odconv",
            kernels=_n,
            description=f"ODConv {_n}x (r=1/16) on every "
            + ("block conv" if _resnet else "conv but the stem"),
        )
