"""DCD's eval-time fold: both routes (each sample's kernel, or the residual on the feature
maps), reused buffers and cached constants, each checked against the naive path across
calls, modes and parameter changes."""

from __future__ import annotations

import pytest
import torch

from dynbench.ops.base import DynamicOp
from dynbench.ops.dcd_linear import DCDLinear
from tests.ops.dcd_cases import (
    FP32,
    ROUTES,
    _activate_branch,
    _conv,
    _naive,
    _prepared,
)


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
