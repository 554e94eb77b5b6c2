"""Registry entries for the DCD paper's ablations (Li et al., ICLR 2021, Tables 1-3).

Every model is one DCD operator with switches (:class:`dynbench.ops.dcd.DCDSwitches`)
on the layers of :mod:`dynbench.models.zoo_dcd`, so that the ablations differ from
the released layout only in what the table varies. The released code has no
ablation variants; the choices below are the ones that reproduce the printed params:

* Table 1, Lambda or P Phi Q^T alone: the branch keeps the width the full layer
  has (``max(pooled, L^2) // r``) and loses only the head it no longer needs.
* Table 2, L x multiplier: L = int(multiplier x the released L), and the branch width
  follows the new L by the same rule.
* Table 3(a), B diagonal blocks: each block's L is the released rule applied to
  the block's channels (C_in / B, C_out / B); the branch keeps the full layer's width.
* MobileNetV2 x0.5 (r = 8), DCD on the t = 6 blocks' pointwise convs; the classifier
  is static except where Table 3(b) places DCD on it (CLS).
* Sec. 5.2, ResNet-18 with joint fusion of channels and kernel elements (Eq. 9) beside
  ``resnet18_dcd``'s channel fusion alone: every block conv a
  :class:`dynbench.ops.dcd_joint.DCDJointConv2d` with the paper's default L and L_k and
  the released basic blocks' branch (2 x 2 pooling, r = 16), DYCls classifier. The paper
  prints only its accuracy (71.3%), so its size is ours alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from dynbench.models.layers import ConvSpec
from dynbench.models.variants import OperatorLayers, Variant, block_convs, register_variants
from dynbench.models.zoo_dcd import (
    RESNET_REDUCTION,
    dcd_classifier,
    dcd_conv,
    expanded_block_pointwise,
    mobilenet_latent,
)
from dynbench.ops.dcd import DCDConv2d
from dynbench.ops.dcd_base import DCDSwitches, default_squeeze
from dynbench.ops.dcd_joint import DCDJointConv2d

MOBILE_REDUCTION = 8  # "fc_squeeze" of the x0.5 model
FULL = DCDSwitches()
LAMBDA_ONLY = DCDSwitches(channel_fusion=False)
FUSION_ONLY = DCDSwitches(channel_attention=False)


def mobilenet_pointwise(
    switches: DCDSwitches = FULL, latent_scale: float = 1.0
) -> Callable[[ConvSpec], DCDConv2d]:
    """A released ``DYModule`` with ``switches``; ``latent_scale`` multiplies its L."""

    def build(spec: ConvSpec) -> DCDConv2d:
        latent, pool = mobilenet_latent(spec.in_channels, spec.out_channels)
        pooled = spec.in_channels * pool**2
        width = default_squeeze(pooled, latent**2, MOBILE_REDUCTION)
        if latent_scale != 1.0:
            latent, width = int(latent * latent_scale), None  # width: the rule on the new L
        blocks = switches.blocks
        if blocks > 1:
            latent = mobilenet_latent(spec.in_channels // blocks, spec.out_channels // blocks)[0]
        return dcd_conv(spec, latent, MOBILE_REDUCTION, pool, squeeze=width, switches=switches)

    return build


def resnet_basic(switches: DCDSwitches) -> Callable[[ConvSpec], DCDConv2d]:
    """The released ``conv_basic_dy`` (2 x 2 pooling, L = isqrt(4 C_in)) with ``switches``."""

    def build(spec: ConvSpec) -> DCDConv2d:
        latent = math.isqrt(4 * spec.in_channels)
        width = default_squeeze(4 * spec.in_channels, latent**2, RESNET_REDUCTION)
        return dcd_conv(spec, latent, RESNET_REDUCTION, 2, squeeze=width, switches=switches)

    return build


def joint_fusion(spec: ConvSpec) -> DCDJointConv2d:
    """Eq. 9 on a basic block's 3 x 3 conv (paper defaults for L and L_k)."""
    return DCDJointConv2d(
        spec.in_channels,
        spec.out_channels,
        spec.kernel_size,
        spec.stride,
        spec.padding,
        reduction=RESNET_REDUCTION,
        pool_size=2,
    )


def layers(
    build_conv: Callable[[ConvSpec], DCDConv2d] | None,
    select: Callable[[ConvSpec], bool] = expanded_block_pointwise,
    classifier: bool = False,
) -> Callable[[], OperatorLayers]:
    def make() -> OperatorLayers:
        return OperatorLayers(build_conv, select, dcd_classifier if classifier else None)

    return make


def _mobile(name: str, build_conv, description: str, classifier: bool = False) -> Variant:
    return Variant(
        f"mobilenetv2_050_dcd_{name}",
        "mobilenetv2_050",
        layers(build_conv, classifier=classifier),
        description,
    )


PW = "DCD on the t=6 blocks' pointwise convs, static classifier"
VARIANTS = (
    _mobile("pw", mobilenet_pointwise(), f"Lambda W0 + P Phi Q^T; {PW} (Tables 1(a), 2, 3)"),
    _mobile("pw_lambda", mobilenet_pointwise(LAMBDA_ONLY), f"Lambda W0 only; {PW} (Table 1(a))"),
    _mobile(
        "pw_fusion", mobilenet_pointwise(FUSION_ONLY), f"W0 + P Phi Q^T only; {PW} (Table 1(a))"
    ),
    *(
        _mobile(
            f"pw_l{round(100 * s):03d}",
            mobilenet_pointwise(latent_scale=s),
            f"L x {s}; {PW} (Table 2)",
        )
        for s in (0.25, 0.5, 0.75)
    ),
    *(
        _mobile(
            f"pw{suffix}_b{b}",
            mobilenet_pointwise(DCDSwitches(attention, True, b)),
            f"{label}, B={b} diagonal blocks; {PW} (Table 3(a))",
        )
        for suffix, attention, label in (
            ("", True, "Lambda W0 + P Phi Q^T"),
            ("_fusion", False, "W0 + P Phi Q^T"),
        )
        for b in (2, 4, 8)
    ),
    _mobile(
        "cls",
        None,
        "DCD on the classifier only (DYCls), every conv static (Table 3(b))",
        classifier=True,
    ),
    Variant(
        "resnet18_dcd_lambda",
        "resnet18",
        layers(resnet_basic(LAMBDA_ONLY), block_convs, True),
        "Lambda W0 only on every block conv, DYCls classifier (Table 1(b))",
    ),
    Variant(
        "resnet18_dcd_fusion",
        "resnet18",
        layers(resnet_basic(FUSION_ONLY), block_convs, True),
        "W0 + P Phi Q^T only on every block conv, DYCls classifier (Table 1(b))",
    ),
    Variant(
        "resnet18_dcd_joint",
        "resnet18",
        layers(joint_fusion, block_convs, True),
        "joint fusion of channels and kernel elements (Eq. 9) on every block conv, "
        "DYCls classifier (Sec. 5.2)",
    ),
)
register_variants("dcd", VARIANTS)
