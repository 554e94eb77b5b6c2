"""DCD with switches (the paper's Tables 1-3): Lambda or P Phi Q^T alone, B diagonal blocks.

Each switched layer's fast path equals its naive per-sample W(x) on every route, the
residual is block diagonal, and the ablation models have the exact sizes that round
to the printed figures (published.csv notes the one that does not).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
import torch
import torch.nn.functional as F

from dynbench.measure.params import count_params
from dynbench.models import create_model
from dynbench.ops.base import set_impl
from dynbench.ops.dcd import DCDConv2d
from dynbench.ops.dcd_base import DCDSwitches
from dynbench.published import load_published
from tests.ops.dcd_cases import FP32, ROUTES, _both_paths, _prepared

SWITCHES = {
    "lambda": DCDSwitches(channel_fusion=False),
    "fusion": DCDSwitches(channel_attention=False),
    "b2": DCDSwitches(blocks=2),
    "fusion-b4": DCDSwitches(channel_attention=False, blocks=4),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_switched_fast_equals_naive(name, kernel, batch, route):
    conv = DCDConv2d(
        16, 24, kernel, 1, kernel // 2, latent_dim=3, pool_size=2, switches=SWITCHES[name]
    )
    conv = _prepared(conv, batch)
    conv.fold = ROUTES[route]
    x = torch.randn(batch, 16, 8, 8, generator=torch.Generator().manual_seed(batch))
    fast, naive = _both_paths(conv, x)
    torch.testing.assert_close(fast, naive, **FP32)


def test_lambda_alone_scales_the_static_conv():
    conv = _prepared(DCDConv2d(8, 12, 3, 2, 1, switches=SWITCHES["lambda"]), 0)
    assert conv.p is None and conv.fc_phi is None and conv.bn_q is None
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        out = conv(x)
        _, scale = conv._branch(conv._pooled(x))
    reference = F.conv2d(x, conv.weight, None, 2, 1) * scale[:, :, None, None]
    torch.testing.assert_close(out, reference, **FP32)
    assert conv.implementation() == "fast/lambda-only"


def test_fusion_alone_has_no_lambda():
    conv = _prepared(DCDConv2d(8, 12, 1, switches=SWITCHES["fusion"]), 0)
    assert conv.fc_scale is None
    _, scale = conv._branch(torch.randn(2, 8))
    assert torch.equal(scale, torch.ones(2, 12))


def test_blocks_make_the_residual_block_diagonal():
    conv = _prepared(DCDConv2d(16, 24, 1, latent_dim=3, switches=SWITCHES["b2"]), 0)
    assert conv.q.shape == (6, 8) and conv.p.shape == (24, 3) and conv.latent_dim == 6
    with torch.no_grad():
        phi, _ = conv._branch(torch.randn(1, 16))
        residual, _ = conv._residual_matrix(phi[0])
    assert residual[:12, 8:].abs().max() == 0 and residual[12:, :8].abs().max() == 0
    assert residual[:12, :8].abs().max() > 0 and residual[12:, 8:].abs().max() > 0


def test_invalid_switches():
    with pytest.raises(ValueError):
        DCDSwitches(channel_attention=False, channel_fusion=False)
    with pytest.raises(ValueError):
        DCDSwitches(channel_fusion=False, blocks=2)
    with pytest.raises(ValueError):
        DCDConv2d(10, 12, 1, switches=DCDSwitches(blocks=4))


def test_analytic_parts_follow_the_switches():
    shapes = ((1, 16, 8, 8), (1, 24, 8, 8))
    full = DCDConv2d(16, 24, 1, latent_dim=4).analytic_madds(*shapes)
    alone = DCDConv2d(16, 24, 1, latent_dim=4, switches=SWITCHES["lambda"]).analytic_madds(*shapes)
    assert alone["aggregation"] == 0 and alone["feature_scale"] == full["feature_scale"]
    blocks = DCDConv2d(16, 24, 1, latent_dim=2, switches=DCDSwitches(blocks=2))
    # two 8 -> 2 -> 2 -> 12 residuals instead of one 16 -> 4 -> 4 -> 24: half the products
    assert blocks.analytic_madds(*shapes)["aggregation"] == 64 * (16 * 2 + 2 * 4 + 2 * 24)


# name: (exact params, printed params) of the DCD paper's ablation tables
ABLATION_PARAMS = {
    "mobilenetv2_050_dcd_pw": (2_876_776, "2.9"),
    "mobilenetv2_050_dcd_pw_lambda": (2_419_752, "2.4"),
    "mobilenetv2_050_dcd_pw_fusion": (2_719_816, "2.7"),
    "mobilenetv2_050_dcd_pw_l025": (2_374_744, "2.4"),
    "mobilenetv2_050_dcd_pw_l050": (2_454_108, "2.5"),
    "mobilenetv2_050_dcd_pw_l075": (2_572_264, "2.6"),
    "mobilenetv2_050_dcd_pw_b2": (2_805_320, "2.8"),
    "mobilenetv2_050_dcd_pw_b4": (2_691_624, "2.7"),
    "mobilenetv2_050_dcd_pw_b8": (2_651_176, "2.7"),
    "mobilenetv2_050_dcd_pw_fusion_b2": (2_648_360, "2.6"),
    "mobilenetv2_050_dcd_pw_fusion_b4": (2_534_664, "2.5"),
    "mobilenetv2_050_dcd_pw_fusion_b8": (2_494_216, "2.5"),
    "mobilenetv2_050_dcd_cls": (2_148_520, "2.2"),
}
# the printed figures the exact sizes do not round to, and what they round to instead:
# 2,148,520 is 2.1M, one unit under the printed 2.2M (noted in published.csv)
PRINTED_MISMATCHES = {"mobilenetv2_050_dcd_cls": "2.1"}


@pytest.mark.parametrize("name", sorted(ABLATION_PARAMS))
def test_ablation_params(name):
    exact, printed = ABLATION_PARAMS[name]
    params = count_params(create_model(name))["params"]
    assert params == exact
    millions = (Decimal(params) / 10**6).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if name in PRINTED_MISMATCHES:
        assert str(millions) == PRINTED_MISMATCHES[name] != printed
        assert Decimal(printed) - millions == Decimal("0.1")  # one unit under the print
    else:
        assert str(millions) == printed


def test_the_printed_params_are_the_papers():
    published = load_published()
    for name, (_, printed) in ABLATION_PARAMS.items():
        assert set(published.loc[published["model"] == name, "params"]) == {f"{printed}M"}


def test_resnet18_formulations_sizes():
    """Table 1(b) is not reproduced (see published.csv); the exact sizes are pinned."""
    assert count_params(create_model("resnet18_dcd_lambda"))["params"] == 13_330_856
    assert count_params(create_model("resnet18_dcd_fusion"))["params"] == 14_398_180


@pytest.mark.parametrize(
    "name",
    ["mobilenetv2_050_dcd_pw_lambda", "mobilenetv2_050_dcd_pw_fusion_b4", "resnet18_dcd_lambda"],
)
def test_ablation_model_fast_equals_naive(name):
    model = create_model(name).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        set_impl(model, "fast")
        fast = model(x)
        set_impl(model, "naive")
        naive = model(x)
    torch.testing.assert_close(fast, naive, rtol=1e-4, atol=1e-4)
