"""ODConv's mixed-route kernel in one compiled pass (dynbench.ops.compiled_kernel): the same
outputs as the naive path, the same kernel as PyTorch's ops, the record says when it ran, and
it steps aside for counters, training and the switch."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dynbench.ops import compiled, compiled_kernel
from dynbench.ops.odconv import COMPILED_KERNEL, ODConv2d
from dynbench.ops.odconv_attention import ALL_ATTENTIONS, CHANNEL, FILTER, KERNEL, SPATIAL


def _layer(cin, cout, k, groups, n, attentions=ALL_ATTENTIONS) -> ODConv2d:
    op = ODConv2d(cin, cout, k, 1, k // 2, groups, num_kernels=n, attentions=attentions)
    with torch.no_grad():
        for p in op.attention.parameters():
            p.normal_(0, 0.3)
    return op.eval()


CASES = [
    # cin, cout, k, groups, n, attentions, batch
    (16, 24, 3, 1, 1, ALL_ATTENTIONS, 1),
    (16, 24, 3, 1, 4, ALL_ATTENTIONS, 1),
    (24, 24, 3, 24, 1, ALL_ATTENTIONS, 1),  # depthwise: no filter head
    (16, 16, 3, 4, 3, ALL_ATTENTIONS, 1),  # grouped: a_c per group's input channels
    (8, 12, 1, 1, 4, ALL_ATTENTIONS, 1),  # 1x1: no spatial head
    (16, 24, 3, 1, 4, ALL_ATTENTIONS, 3),  # per-sample kernels, a_c and a_f on the maps
    (12, 12, 3, 3, 2, frozenset({KERNEL, SPATIAL}), 2),
    (16, 24, 1, 1, 1, frozenset({CHANNEL, FILTER}), 1),  # a_c, a_f on the small kernel
]


@pytest.mark.parametrize("cin, cout, k, groups, n, attentions, batch", CASES)
def test_compiled_kernel_gives_the_naive_output(
    switched_on, monkeypatch, cin, cout, k, groups, n, attentions, batch
):
    torch.manual_seed(cin * n + k + batch)
    op = _layer(cin, cout, k, groups, n, attentions)
    op.input_side = False  # the mixed route, whatever the shape
    x = torch.randn(batch, cin, 9, 9)
    check_against_ops_and_naive(op, x, monkeypatch, "fast/mixed", COMPILED_KERNEL)


def check_against_ops_and_naive(op: ODConv2d, x, monkeypatch, route: str, suffix: str) -> None:
    """``op`` on ``x`` takes ``route`` with its compiled pass (the record says ``suffix``) and
    gives what the route gives with PyTorch's ops and what the naive path gives (rtol 1e-5)."""
    with torch.inference_mode():
        out = op(x)
        assert op.implementation().startswith(f"{route}+{suffix}")
        monkeypatch.setenv(compiled.SWITCH, "0")
        ops = op(x)
        assert op.implementation() == route
        op.set_impl("naive")
        naive = op(x)
    torch.testing.assert_close(out, naive, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ops, rtol=1e-5, atol=1e-5)


def test_the_pass_writes_the_kernel_the_ops_write(switched_on):
    """Mixed by a_w and scaled by a_s, a_c (per group) and a_f, element by element."""
    torch.manual_seed(3)
    weight = torch.randn(3, 8, 2, 3, 3)  # n = 3, C_out = 8, groups = 2 of 2 input channels
    mix, spatial = torch.rand(1, 3), torch.rand(1, 9)
    channel, filt = torch.rand(1, 4), torch.rand(1, 8)
    with torch.inference_mode():
        out = compiled_kernel.scaled_kernel(weight, mix, spatial, channel, filt, 2)
    a_c = channel.view(2, 1, 2).expand(2, 4, 2).reshape(8, 2, 1, 1)
    expected = (mix.view(3, 1, 1, 1, 1) * weight).sum(0) * spatial.view(3, 3) * a_c
    expected = expected * filt.view(8, 1, 1, 1)
    torch.testing.assert_close(out, expected[None], rtol=1e-6, atol=1e-6)


def test_a_static_kernel_with_nothing_to_scale_is_read_as_it_is(switched_on):
    op = _layer(16, 24, 1, 1, 1, frozenset({CHANNEL}))
    x = torch.randn(2, 16, 5, 5)  # beyond batch 1 a_c scales the map: nothing on the kernel
    with torch.inference_mode():
        op(x)
    assert op.implementation() == "fast/mixed+compiled-attention"


def test_counters_and_training_see_the_ops(switched_on):
    op = _layer(16, 24, 3, 1, 4)
    op.input_side = False
    x = torch.randn(1, 16, 8, 8)
    with torch.inference_mode():
        op(x)
        assert op.kernel_compiled
        with FlopCounterMode(display=False):
            op(x)
        assert not op.kernel_compiled
    op.train()
    op(torch.randn(2, 16, 8, 8)).sum().backward()
    assert not op.kernel_compiled and op.weight.grad is not None


def test_attentions_of_another_dtype_leave_the_ops_running(switched_on):
    weight = torch.randn(2, 4, 3, 3, 3)
    with torch.inference_mode():
        assert (
            compiled_kernel.scaled_kernel(weight, torch.rand(1, 2), None, None, None, 1) is not None
        )
        mixed_precision = torch.rand(1, 2, dtype=torch.bfloat16)
        assert compiled_kernel.scaled_kernel(weight, mixed_precision, None, None, None, 1) is None
