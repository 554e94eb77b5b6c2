"""DCD: fast path against the naive per-sample W(x), degenerate cases, exact sizes.

The eval-mode fast path has two routes (each sample's kernel, or the residual on the
feature maps), reused buffers and cached constants: each route is checked against the
naive path, across calls, modes and parameter changes. The training-mode path is
checked against a literal transcription of the released code.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynbench.measure.madds import conv2d_madds, conv_linear_madds
from dynbench.ops.base import fc_madds
from dynbench.measure.params import count_params
from dynbench.models import create_model
from dynbench.ops.base import DynamicOp
from dynbench.results.names import MADDS_PARTS
from dynbench.ops.dcd import (
    DCDConv2d,
    DCDLinear,
    adaptive_pool_flat,
    hard_sigmoid,
    paper_latent_dim,
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

FP32 = {"rtol": 1e-5, "atol": 1e-6}


def _randomize_bn(module: nn.Module, seed: int) -> None:
    """Non-trivial affine and running statistics, so that folding the BNs is exercised."""
    gen = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm1d):
            size = bn.num_features
            bn.weight.data = torch.rand(size, generator=gen) + 0.5
            bn.bias.data = 0.1 * torch.randn(size, generator=gen)
            bn.running_mean = 0.1 * torch.randn(size, generator=gen)
            bn.running_var = torch.rand(size, generator=gen) + 0.5


def _prepared(module: DynamicOp, seed: int) -> DynamicOp:
    # Every layer scaled to keep activations around 0.1: fp32 round-off of the two
    # paths' different summation orders (~1e-7 relative x fan-in) then stays well
    # below the 1e-6 absolute tolerance.
    torch.manual_seed(seed)
    for param in module.parameters():
        param.data = 0.2 * torch.randn_like(param) / param[0].numel() ** 0.5
    _randomize_bn(module, seed)
    return module.eval()


def _both_paths(module: DynamicOp, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        module.set_impl("fast")
        fast = module(x)
        module.set_impl("naive")
        naive = module(x)
    return fast, naive


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


@pytest.mark.parametrize("name", ["resnet18_dcd", "mobilenetv2_050_dcd"])
def test_model_conv_linear_is_ops_plus_static_layers(name):
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
    assert conv_linear_madds(model, x) == sum(static) + sum(dynamic)


# --- eval-mode routes, buffers and cached constants ---------------------------------

ROUTES = {"auto": None, "kernel": True, "feature_maps": False}


def _released_branch(module: DynamicOp, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Phi and the pre-activation of Lambda, written as the released code has them."""
    if isinstance(module, DCDConv2d):
        x = F.adaptive_avg_pool2d(x, module.pool_size).flatten(1)
    y = F.linear(x, module.fc)
    y = y * (F.relu6(F.linear(y, module.gate) + 3.0) / 3.0)
    phi = F.linear(y, module.fc_phi).view(-1, module.latent_dim, module.latent_dim)
    return phi, F.linear(y, module.fc_scale)


def _activate_branch(module: DynamicOp, x: torch.Tensor) -> DynamicOp:
    """Rescale the heads so that on ``x`` Lambda spreads over [0, 2], partly clipped, and
    Phi mixes the latent channels as strongly as the identity path carries them."""
    with torch.no_grad():
        phi, pre_scale = _released_branch(module, x)
        module.fc_scale.mul_(4.0 / pre_scale.std())
        module.fc_phi.mul_(0.5 / module.latent_dim**0.5 / phi.std())
        phi, pre_scale = _released_branch(module, x)
    scale = F.relu6(pre_scale + 3.0) / 3.0
    clipped = ((scale == 0) | (scale == 2)).any()
    assert clipped and scale.max() - scale.min() > 1 and ((scale > 0) & (scale < 2)).any()
    assert phi.abs().sum(2).mean() > 0.3
    return module


def _conv(kernel: int, stride: int, batch: int, bias: bool = False, seed: int = 0):
    conv = DCDConv2d(12, 20, kernel, stride, kernel // 2, bias, pool_size=2)
    conv = _prepared(conv, seed)
    gen = torch.Generator().manual_seed(seed + 100 * batch)
    x = torch.randn(batch, 12, 9, 9, generator=gen)
    return _activate_branch(conv, x), x


def _naive(module: DynamicOp, x: torch.Tensor) -> torch.Tensor:
    impl = module.impl
    module.set_impl("naive")
    try:
        with torch.no_grad():
            return module(x)
    finally:
        module.set_impl(impl)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("batch", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [1, 3])
def test_eval_routes_equal_naive(kernel, stride, batch, route):
    """Both eval routes, with active Phi and Lambda and folded random BN statistics."""
    conv, x = _conv(kernel, stride, batch, bias=kernel == 3)
    conv.fold = ROUTES[route]
    with torch.inference_mode():
        fast = conv(x)
    torch.testing.assert_close(fast, _naive(conv, x), **FP32)


def test_auto_route_takes_each_route_where_it_is_cheaper():
    early = DCDConv2d(64, 64, 3, 1, 1, latent_dim=16, pool_size=2)
    late = DCDConv2d(512, 512, 3, 1, 1, latent_dim=45, pool_size=2)
    assert early.kernel_is_cheaper(1, 56, 56)
    assert not late.kernel_is_cheaper(1, 7, 7)
    assert not early.kernel_is_cheaper(1024, 56, 56)  # the kernels' buffer is capped


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kernel", [1, 3])
def test_reused_buffers_across_calls(kernel, route):
    """Calls on new inputs (and a new batch size) give fresh, correct outputs, and an
    earlier output is not overwritten by a later call."""
    conv, x1 = _conv(kernel, 1, 2)
    conv.fold = ROUTES[route]
    x2 = torch.randn_like(x1)
    x3 = torch.randn(3, *x1.shape[1:])
    with torch.inference_mode():
        out1 = conv(x1)
        out1_copy = out1.clone()
        out2 = conv(x2)
        out3 = conv(x3)
        out1_again = conv(x1)
    torch.testing.assert_close(out1, out1_copy, rtol=0, atol=0)
    torch.testing.assert_close(out1, _naive(conv, x1), **FP32)
    torch.testing.assert_close(out2, _naive(conv, x2), **FP32)
    torch.testing.assert_close(out3, _naive(conv, x3), **FP32)
    torch.testing.assert_close(out1_again, out1, **FP32)
    one = x1[:1]
    with torch.no_grad():
        out_one = conv(one)
        out_one_next = conv(x2[:1])
    torch.testing.assert_close(out_one, _naive(conv, one), **FP32)
    torch.testing.assert_close(out_one_next, _naive(conv, x2[:1]), **FP32)


@pytest.mark.parametrize("route", ROUTES)
def test_inference_mode_then_no_grad_then_autograd(route):
    """Buffers and constants made under inference mode serve later calls outside it,
    and with autograd recording the routes give the naive path's gradients."""
    conv, x = _conv(3, 1, 2, bias=True)
    conv.fold = ROUTES[route]
    reference = _naive(conv, x)
    with torch.inference_mode():
        torch.testing.assert_close(conv(x), reference, **FP32)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), reference, **FP32)
    x_fast = x.clone().requires_grad_()
    out = conv(x_fast)
    torch.testing.assert_close(out.detach(), reference, **FP32)
    weights = torch.randn_like(out)
    fast_grads = torch.autograd.grad((out * weights).sum(), [x_fast, *conv.parameters()])
    conv.set_impl("naive")
    x_naive = x.clone().requires_grad_()
    naive_out = conv(x_naive)
    naive_grads = torch.autograd.grad((naive_out * weights).sum(), [x_naive, *conv.parameters()])
    for fast_grad, naive_grad in zip(fast_grads, naive_grads, strict=True):
        torch.testing.assert_close(fast_grad, naive_grad, rtol=1e-4, atol=1e-5)


def _changes(module: DynamicOp, x: torch.Tensor):
    """Ways to change what the cached constants were built from, between two calls."""

    def in_place_p():
        with torch.no_grad():
            module.p.mul_(1.5)

    def in_place_running_var():
        with torch.no_grad():
            module.bn_phi.running_var.mul_(2.0)

    def replaced_head():
        module.fc_phi.data = module.fc_phi.data.flip(0).clone()

    def replaced_running_mean():
        module.bn_q.running_mean = module.bn_q.running_mean + 0.3

    def trained_running_stats():
        module.train()
        with torch.no_grad():
            module(torch.cat([x, 2 * x + 1]))
        module.eval()

    def only_bn_trained():
        module.bn_q.train()
        with torch.no_grad():
            module(torch.cat([x, x - 1]))
        module.bn_q.eval()

    def loaded_state():
        state = {k: v.clone() for k, v in module.state_dict().items()}
        state["q"] = -state["q"]
        state["fc_scale"] = state["fc_scale"].roll(1, 0)
        module.load_state_dict(state)

    return [
        in_place_p,
        in_place_running_var,
        replaced_head,
        replaced_running_mean,
        trained_running_stats,
        only_bn_trained,
        loaded_state,
    ]


@pytest.mark.parametrize("route", ROUTES)
def test_cached_constants_follow_parameter_changes(route):
    conv, x = _conv(3, 2, 2)
    conv.fold = ROUTES[route]
    for change in _changes(conv, x):
        with torch.inference_mode():
            conv(x)
        change()
        with torch.inference_mode():
            out = conv(x)
        torch.testing.assert_close(out, _naive(conv, x), **FP32, msg=change.__name__)


@pytest.mark.parametrize("batch", [1, 2, 5])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_active_branch_and_reuse(batch, bias):
    fc = _prepared(DCDLinear(40, 30, bias, latent_dim=6, squeeze=8), batch)
    x1, x2 = torch.randn(batch, 40), torch.randn(batch, 40)
    _activate_branch(fc, torch.cat([x1, x2]))
    with torch.inference_mode():
        out1 = fc(x1)
        out2 = fc(x2)
    torch.testing.assert_close(out1, _naive(fc, x1), **FP32)
    torch.testing.assert_close(out2, _naive(fc, x2), **FP32)
    for change in _changes(fc, x1):
        change()
        with torch.inference_mode():
            torch.testing.assert_close(fc(x1), _naive(fc, x1), **FP32, msg=change.__name__)


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
