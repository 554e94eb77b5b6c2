"""Registry entries for spatial DynConv (Verelst & Tuytelaars, CVPR 2020).

Every residual block of a ResNet (v1.5 layout, as the released code) gets a mask unit;
in MobileNetV2 the stride-1 inverted residuals whose input and output channels match (the
ones with a residual connection), as the released pose hourglass does. See
:mod:`dynbench.models.masked_blocks` for where each block applies its masks.
"""

from __future__ import annotations

from torch import nn

from dynbench.models.layers import BlockSpec
from dynbench.models.masked_blocks import (
    SpatialBasicBlock,
    SpatialBottleneck,
    SpatialInvertedResidual,
)
from dynbench.models.mobilenetv2 import InvertedResidual
from dynbench.models.resnet import BasicBlock, Bottleneck
from dynbench.models.variants import OperatorLayers, Variant, register_variants


def spatial(block: nn.Module, spec: BlockSpec) -> nn.Module:
    """The block with a mask unit, where the released code gives it one."""
    if isinstance(block, Bottleneck):
        return SpatialBottleneck(block, spec.block_index)
    if isinstance(block, BasicBlock):
        return SpatialBasicBlock(block, spec.block_index)
    if isinstance(block, InvertedResidual) and block.use_res_connect and block.expand_ratio != 1:
        return SpatialInvertedResidual(block, spec.block_index)
    return block


def spatial_layers() -> OperatorLayers:
    return OperatorLayers(wrap=spatial)


RESNET = "a mask unit per residual block (v1.5 layout); stem, downsample, classifier dense"
MOBILE = "a mask unit per stride-1 inverted residual with a residual connection"

VARIANTS = (
    Variant("resnet18_dynconv", "resnet18", spatial_layers, RESNET),
    Variant("resnet34_dynconv", "resnet34", spatial_layers, RESNET),
    Variant("resnet50_dynconv", "resnet50", spatial_layers, RESNET),
    Variant("resnet101_dynconv", "resnet101", spatial_layers, RESNET),
    Variant("mobilenetv2_100_dynconv", "mobilenetv2_100", spatial_layers, MOBILE),
)
register_variants("dynconv", VARIANTS)
