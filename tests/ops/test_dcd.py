"""DCD: fast path against the naive per-sample W(x), degenerate cases, exact sizes.

The training-mode path is checked against a literal transcription of the released
code; the eval-time fold is tested in test_dcd_fold.py, its route choice in
test_dcd_route.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynbench.measure.params import count_params
from dynbench.measure.shape_counters import conv2d_madds, conv_linear_madds
from dynbench.models import create_model
from dynbench.ops.base import DynamicOp, fc_madds
from dynbench.ops.dcd import DCDConv2d, adaptive_pool_flat
from dynbench.ops.dcd_base import hard_sigmoid, paper_latent_dim
from dynbench.ops.dcd_linear import DCDLinear
from dynbench.results.names import MADDS_PARTS
from tests.ops.dcd_cases import (
    FP32,
    _activate_branch,
    _both_paths,
    _prepared,
    _released_branch,
)

# The released code's shapes; ODConv's table prints these rounded to 0.01M.
REGISTERED_PARAMS = {
    "resnet10_dcd": 6_688_844,
    "resnet18_dcd": 14_703_332,
    "resnet50_dcd": 29_835_056,
    "resnet50_v1_dcd": 29_835_056,
    "mobilenetv2_100_dcd": 5_720_028,
    "mobilenetv2_075_dcd": 4_081_621,
    "mobilenetv2_050_dcd": 3_056_616,
    "mobilenetv2_035_dcd": 2_267_932,
}


CONV_CASES = [
    # in, out, kernel, stride, size, pool, bias
    (16, 24, 1, 1, 9, 1, False),
    (24, 16, 1, 2, 8, 2, False),
    (8, 32, 3, 1, 7, 2, True),
    (32, 32, 3, 2, 9, 1, False),
    (20, 12, 5, 2, 10, 1, True),
]


@pytest.mark.parametrize("batch", [1, 2, 3, 5])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}-{c[1]}-k{c[2]}-s{c[3]}")
def test_conv_fast_equals_naive(case, batch):
    cin, cout, k, stride, size, pool, bias = case
    conv = _prepared(DCDConv2d(cin, cout, k, stride, k // 2, bias, pool_size=pool), batch)
    x = torch.randn(batch, cin, size, size, generator=torch.Generator().manual_seed(batch))
    fast, naive = _both_paths(conv, x)
    reference = F.conv2d(x, conv.weight, conv.bias, stride, k // 2)
    assert fast.shape == naive.shape == reference.shape
    torch.testing.assert_close(fast, naive, **FP32)


@pytest.mark.parametrize("batch", [1, 2, 4, 5])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_fast_equals_naive(batch, bias):
    fc = _prepared(DCDLinear(40, 30, bias, latent_dim=6, squeeze=8), batch)
    fast, naive = _both_paths(fc, torch.randn(batch, 40))
    assert fast.shape == (batch, 30)
    torch.testing.assert_close(fast, naive, **FP32)


@pytest.mark.parametrize(
    "module, x",
    [
        (DCDConv2d(16, 32, 3, 2, 1, pool_size=2), torch.randn(5, 16, 12, 12)),
        (DCDConv2d(32, 16, 1), torch.randn(5, 32, 6, 6)),
        (DCDLinear(64, 10), torch.randn(5, 64)),
    ],
    ids=["conv3x3", "conv1x1", "linear"],
)
def test_sample_independent_of_its_batch(module, x):
    module = _prepared(module, 0)
    with torch.no_grad():
        together = module(x)
        alone = torch.cat([module(sample) for sample in x.split(1)])
    torch.testing.assert_close(together, alone, **FP32)


def _static_lambda_and_phi(module: DynamicOp) -> None:
    """Phi = 0 (its head's weight zeroed) and Lambda = hardsigmoid(0) = 1."""
    with torch.no_grad():
        module.fc_phi.zero_()
        module.fc_scale.zero_()


@pytest.mark.parametrize("kernel, stride", [(1, 1), (3, 2)])
def test_degenerate_is_static_conv(kernel, stride):
    """With Phi = 0, Lambda = 1 and P = 0, DCD is the static conv with W0."""
    conv = _prepared(DCDConv2d(12, 20, kernel, stride, kernel // 2), 1)
    _static_lambda_and_phi(conv)
    with torch.no_grad():
        conv.p.zero_()
    x = torch.randn(3, 12, 9, 9)
    for impl in ("fast", "naive"):
        conv.set_impl(impl)
        with torch.no_grad():
            torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, None, stride, kernel // 2))


def test_phi_zero_leaves_the_released_identity_path():
    """The released code adds BN1(Q^T x) to BN2(Phi ...), so Phi = 0 is not W0 alone.

    What remains is a static low-rank 1x1 term P diag(s1) Q^T with bias P (t1 + t2),
    s and t being the folded BN scales and shifts, on the centre tap.
    """
    conv = _prepared(DCDConv2d(12, 20, 3, 1, 1), 2)
    _static_lambda_and_phi(conv)
    s1 = conv.bn_q.weight / torch.sqrt(conv.bn_q.running_var + conv.bn_q.eps)
    t1 = conv.bn_q.bias - conv.bn_q.running_mean * s1
    s2 = conv.bn_phi.weight / torch.sqrt(conv.bn_phi.running_var + conv.bn_phi.eps)
    t2 = conv.bn_phi.bias - conv.bn_phi.running_mean * s2
    weight = conv.weight.detach().clone()
    weight[:, :, 1, 1] += conv.p @ (s1[:, None] * conv.q)
    x = torch.randn(2, 12, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), F.conv2d(x, weight, conv.p @ (t1 + t2), 1, 1))


def test_linear_degenerate_is_static_fc():
    fc = _prepared(DCDLinear(24, 7), 3)
    _static_lambda_and_phi(fc)
    with torch.no_grad():
        fc.p.zero_()
        x = torch.randn(4, 24)
        torch.testing.assert_close(fc(x), F.linear(x, fc.weight, fc.bias))


def test_naive_path_is_eval_only():
    conv = DCDConv2d(8, 8, 1).train()
    conv.set_impl("naive")
    with pytest.raises(RuntimeError, match="eval mode"):
        conv(torch.randn(2, 8, 4, 4))


def test_phases_are_profiled():
    conv = _prepared(DCDConv2d(8, 8, 3, 1, 1), 0)
    with torch.profiler.profile() as prof, torch.no_grad():
        conv(torch.randn(1, 8, 6, 6))
    names = {event.name for event in prof.events()}
    assert {"attention", "aggregation", "conv"} <= names


def test_paper_latent_dim():
    # floor(C / 2^floor(log2 sqrt C)): 64 / 8, 96 / 8, 128 / 8, 1280 / 32
    assert [paper_latent_dim(c) for c in (64, 96, 128, 1280)] == [8, 12, 16, 40]
    assert DCDConv2d(64, 64, 1).latent_dim == 8
    # squeeze = max(C * pool^2, L^2) // r, at least 4
    assert DCDConv2d(64, 64, 3, padding=1, pool_size=2).squeeze == 256 // 16
    assert DCDConv2d(16, 16, 1).squeeze == 4


def test_rejects_misaligned_centre_tap():
    with pytest.raises(ValueError, match="centre tap"):
        DCDConv2d(8, 8, 3, padding=0)


@pytest.mark.parametrize("name", sorted(REGISTERED_PARAMS))
def test_registered_params(name):
    model = create_model(name)
    assert count_params(model)["params"] == REGISTERED_PARAMS[name]
    assert isinstance(model.fc if name.startswith("resnet") else model.classifier[1], DCDLinear)


def test_mobilenet_t1_block_and_depthwise_stay_static():
    model = create_model("mobilenetv2_050_dcd")
    first, second = model.features[1].conv, model.features[2].conv
    assert not any(isinstance(m, DCDConv2d) for m in first.modules())
    expand, depthwise, project = second[0][0], second[1][0], second[2]
    assert (type(expand), type(depthwise), type(project)) == (DCDConv2d, nn.Conv2d, DCDConv2d)


def test_analytic_conv_part_is_the_static_conv():
    conv = DCDConv2d(16, 32, 3, 2, 1, pool_size=2)
    x = torch.randn(2, 16, 10, 10)
    out = conv.eval()(x)
    parts = conv.analytic_madds(tuple(x.shape), tuple(out.shape))
    assert tuple(parts) == MADDS_PARTS
    assert parts["conv"] == conv2d_madds(conv.weight.shape, out.shape)
    fc = DCDLinear(64, 10)
    parts = fc.analytic_madds((3, 64), (3, 10))
    assert tuple(parts) == MADDS_PARTS
    assert parts["conv"] == fc_madds(3, 64, 10)


@pytest.mark.parametrize(
    "name, total", [("resnet18_dcd", 488_074_624), ("mobilenetv2_050_dcd", 28_034_592)]
)
def test_model_conv_linear_is_ops_plus_static_layers(name, total):
    model = create_model(name).eval()
    static, dynamic = [], []
    inside = {m for op in model.modules() if isinstance(op, DynamicOp) for m in op.modules()}

    def hook(module, inputs, output):
        if isinstance(module, DynamicOp):
            parts = module.analytic_madds(tuple(inputs[0].shape), tuple(output.shape))
            dynamic.append(parts["conv"] + parts["attention"])
        elif isinstance(module, nn.Conv2d):
            static.append(conv2d_madds(module.weight.shape, output.shape))
        else:
            static.append(fc_madds(1, module.in_features, module.out_features))

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, DynamicOp) or (isinstance(m, nn.Conv2d | nn.Linear) and m not in inside)
    ]
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    assert dynamic and static
    assert sum(dynamic) + sum(static) == conv_linear_madds(model, x) == total


# --- training mode: the released wiring with batch statistics ------------------------


def _released_forward(module: DynamicOp, x: torch.Tensor, stats: dict) -> torch.Tensor:
    """The released code's forward in training mode, written out: BNs with batch
    statistics, updating the running statistics in ``stats``."""
    phi, pre_scale = _released_branch(module, x)
    scale = F.relu6(pre_scale + 3.0) / 3.0

    def bn(name: str, v: torch.Tensor) -> torch.Tensor:
        module_bn = getattr(module, name)
        return F.batch_norm(
            v,
            stats[name + ".running_mean"],
            stats[name + ".running_var"],
            module_bn.weight,
            module_bn.bias,
            True,
            module_bn.momentum,
            module_bn.eps,
        )

    if isinstance(module, DCDLinear):
        latent = bn("bn_q", F.linear(x, module.q))[:, :, None]
        fused = bn("bn_phi", torch.bmm(phi, latent)) + latent
        return scale * F.linear(x, module.weight, module.bias) + F.linear(fused[:, :, 0], module.p)
    static = F.conv2d(x, module.weight, module.bias, module.stride, module.padding)
    latent = F.conv2d(x, module.q[:, :, None, None], stride=module.stride)
    batch, _, height, width = latent.shape
    latent = bn("bn_q", latent.flatten(2))
    fused = (bn("bn_phi", torch.bmm(phi, latent)) + latent).view(batch, -1, height, width)
    return scale[:, :, None, None] * static + F.conv2d(fused, module.p[:, :, None, None])


@pytest.mark.parametrize(
    "make",
    [
        lambda: DCDConv2d(12, 20, 3, 1, 1, True, pool_size=2),
        lambda: DCDConv2d(12, 20, 1, 2, 0, pool_size=1),
        lambda: DCDLinear(40, 30, latent_dim=6, squeeze=8),
    ],
    ids=["conv3x3", "conv1x1-s2", "linear"],
)
def test_train_mode_matches_released_wiring(make):
    module = _prepared(make(), 0).train()
    shape = (4, 12, 9, 9) if isinstance(module, DCDConv2d) else (4, 40)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    _activate_branch(module, x)
    stats = {k: v.clone() for k, v in module.state_dict().items() if "running" in k and "bn_" in k}
    x_fast = x.clone().requires_grad_()
    out = module(x_fast)
    x_ref = x.clone().requires_grad_()
    reference = _released_forward(module, x_ref, stats)
    torch.testing.assert_close(out, reference, **FP32)
    for name, value in stats.items():
        torch.testing.assert_close(module.state_dict()[name], value, **FP32)
    weights = torch.randn_like(out)
    (grad_fast,) = torch.autograd.grad((out * weights).sum(), x_fast)
    (grad_ref,) = torch.autograd.grad((reference * weights).sum(), x_ref)
    torch.testing.assert_close(grad_fast, grad_ref, rtol=1e-4, atol=1e-5)


# --- helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, size",
    [
        ((2, 5, 56, 56), 2),
        ((1, 3, 7, 7), 2),
        ((2, 4, 14, 14), 2),
        ((1, 3, 9, 11), 3),
        ((3, 4, 6, 6), 1),
        ((2, 3, 64, 48), 4),
        ((1, 2, 45, 45), 2),
    ],
)
def test_adaptive_pool_flat_is_adaptive_avg_pool(shape, size):
    x = torch.randn(shape)
    expected = F.adaptive_avg_pool2d(x, size).flatten(1)
    torch.testing.assert_close(adaptive_pool_flat(x, size), expected, rtol=1e-5, atol=1e-6)


def test_hard_sigmoid_is_the_released_formula():
    v = torch.linspace(-5, 5, 10001)
    torch.testing.assert_close(hard_sigmoid(v), F.relu6(v + 3.0) / 3.0, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["resnet18_dcd", "resnet50_v1_dcd", "mobilenetv2_100_dcd"])
def test_model_is_finite_in_eval_mode_at_init(name):
    """With the branch's batch norms at their initial statistics an eval-mode forward
    does not normalise the latent path; P starting at zero keeps it finite (the
    released init reaches inf / NaN in ResNet-18's second stage)."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert torch.isfinite(out).all()
    dcd = [m for m in model.modules() if isinstance(m, DCDConv2d) and m.p is not None]
    assert dcd and all(not m.p.any() for m in dcd)


def test_p_starts_at_zero_so_a_layer_starts_as_lambda_w0():
    torch.manual_seed(0)
    conv = DCDConv2d(16, 24, 3, 1, 1, pool_size=2).eval()
    x = torch.randn(2, 16, 10, 10)
    with torch.no_grad():
        _, scale = conv._branch(conv._pooled(x))
        expected = F.conv2d(x, conv.weight, padding=1) * scale[:, :, None, None]
        torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_kernel_route_prices_lambda_and_the_residual_once_per_sample():
    """On the kernel: Lambda W_0 is C_out C_in k^2 and P Phi Q^T is C_out L (L + C_in) per
    sample (L = 8 for 64 inputs), where the feature maps pay per output pixel."""
    conv = DCDConv2d(64, 128, 1)
    assert conv.latent_dim == 8
    x_shape, out_shape = (1, 64, 14, 14), (1, 128, 14, 14)
    assert conv.kernel_route_madds(x_shape, out_shape) == {
        "aggregation": 128 * 8 * (8 + 64),
        "feature_scale": 128 * 64,
    }
    on_maps = conv.analytic_madds(x_shape, out_shape)
    assert on_maps["aggregation"] == 196 * (64 * 8 + 8 * 8 + 8 * 128)
    assert on_maps["feature_scale"] == 196 * 128
    square = DCDConv2d(64, 64, 3, padding=1)
    assert square.kernel_route_madds((2, 64, 56, 56), (2, 64, 56, 56)) == {
        "aggregation": 2 * 64 * 8 * (8 + 64),
        "feature_scale": 2 * 64 * 64 * 9,
    }
    fc = DCDLinear(64, 10)
    assert fc.kernel_route_madds((3, 64), (3, 10)) == {
        "aggregation": 3 * 10 * 8 * (8 + 64),
        "feature_scale": 3 * 10 * 64,
    }
