"""ODConv's compiled attention branch (dynbench.ops.compiled_attention): the same attentions
as PyTorch's ops, the record says when it ran, and it steps aside for counters, traces, the
switch and a failed build."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dynbench.ops import compiled
from dynbench.ops.odconv import COMPILED, ODConv2d
from dynbench.ops.odconv_attention import ALL_ATTENTIONS, CHANNEL, KERNEL, SPATIAL


def _layer(cin, cout, k, groups, n, attentions=ALL_ATTENTIONS) -> ODConv2d:
    op = ODConv2d(cin, cout, k, 1, k // 2, groups, num_kernels=n, attentions=attentions)
    with torch.no_grad():
        for p in op.attention.parameters():
            p.normal_(0, 0.3)
        op.attention.bn.running_var.uniform_(0.5, 2.0)
    return op.eval()


CASES = [
    # cin, cout, k, groups, n, attentions, batch, hw
    (32, 48, 3, 1, 1, ALL_ATTENTIONS, 1, 14),
    (32, 32, 3, 32, 1, ALL_ATTENTIONS, 1, 9),  # depthwise: no filter head
    (40, 24, 1, 1, 1, ALL_ATTENTIONS, 1, 28),  # 1x1: no spatial head
    (32, 48, 3, 1, 4, ALL_ATTENTIONS, 1, 7),  # with the kernel head (softmax, not a gate)
    (24, 24, 3, 2, 3, frozenset({KERNEL, SPATIAL}), 3, 10),
    (16, 24, 3, 1, 1, frozenset({CHANNEL}), 2, 8),
]


@pytest.mark.parametrize("cin, cout, k, groups, n, attentions, batch, hw", CASES)
def test_compiled_branch_gives_the_ops_attentions_and_the_naive_output(
    switched_on, monkeypatch, cin, cout, k, groups, n, attentions, batch, hw
):
    torch.manual_seed(cin + cout + k + n + batch)
    op = _layer(cin, cout, k, groups, n, attentions)
    x = torch.randn(batch, cin, hw, hw)
    with torch.inference_mode():
        attentions = op.attention(x)
        assert op.attention.compiled
        out = op(x)
        assert op.implementation().endswith(f"+{COMPILED}")
        monkeypatch.setenv(compiled.SWITCH, "0")
        ops = op.attention(x)
        assert not op.attention.compiled
        op.set_impl("naive")
        naive = op(x)
    assert [a is None for a in attentions] == [a is None for a in ops]
    for a, b in zip(attentions, ops, strict=True):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, naive, rtol=1e-5, atol=1e-5)
    assert not op.implementation().endswith(COMPILED)  # naive: no suffix


def test_counters_traces_and_training_see_the_ops(switched_on):
    op = _layer(16, 24, 3, 1, 1)
    x = torch.randn(1, 16, 8, 8)
    with torch.inference_mode():
        op(x)
        assert op.attention.compiled
        with FlopCounterMode(display=False) as counter:
            op(x)
        assert not op.attention.compiled  # a dispatch mode must see the linears
        assert counter.get_total_flops() > 0
    with torch.no_grad():
        torch.jit.trace(op, x, check_trace=False)
    assert not op.attention.compiled
    op.train()
    op(torch.randn(2, 16, 8, 8))  # batch norm in training needs two images
    assert not op.attention.compiled and op.implementation() == "fast/mixed"


def test_a_failed_build_leaves_the_ops_running(monkeypatch):
    monkeypatch.setenv(compiled.SWITCH, "1")
    monkeypatch.setattr(compiled, "_BUILT", {"module": None})  # as a failed build leaves it
    op = _layer(16, 24, 3, 1, 1)
    x = torch.randn(1, 16, 8, 8)
    with torch.inference_mode():
        fallback = op(x)
    assert not op.attention.compiled and op.implementation() == "fast/mixed"
    op.set_impl("naive")
    with torch.inference_mode():
        torch.testing.assert_close(fallback, op(x), rtol=1e-5, atol=1e-5)


def test_a_map_in_another_layout_runs_the_ops(switched_on):
    op = _layer(16, 24, 3, 1, 1)
    x = torch.randn(1, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        op(x)
    assert not op.attention.compiled
