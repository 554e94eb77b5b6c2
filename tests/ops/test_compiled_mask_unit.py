"""Spatial DynConv's compiled mask-unit logits (dynbench.ops.compiled_mask_unit): the same
logits as PyTorch's ops and as the released unit (conv + Linear on the pooled input), the
record says when they ran, and they step aside for counters, traces and training."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dynbench.models import create_model
from dynbench.models.masked_blocks import (
    COMPILED_UNIT,
    set_execution,
    set_granularity,
    set_mask_source,
    spatial_blocks,
)
from dynbench.ops import compiled
from dynbench.ops.dynconv import MaskSource, MaskUnit


def _unit(channels: int, stride: int) -> MaskUnit:
    unit = MaskUnit(channels, stride).eval()
    with torch.no_grad():
        unit.conv.bias.fill_(0.3)
        unit.fc.bias.fill_(-0.2)
    return unit


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(
    "stride, size",
    [(1, (6, 5)), (2, (7, 8)), (2, (8, 8)), (3, (10, 7)), (1, (1, 1)), (2, (1, 2)), (1, (2, 3))],
)
def test_compiled_logits_are_the_ops_and_the_released_units(
    switched_on, monkeypatch, stride, size, layout, batch
):
    torch.manual_seed(stride * 31 + size[0] + batch)
    unit = _unit(12, stride)
    x = torch.randn(batch, 12, *size).contiguous(memory_format=layout)
    with torch.inference_mode():
        logits = unit(x)
        assert unit.compiled
        released = unit.conv(x) + unit.fc(x.mean((2, 3)))[:, :, None, None]
        monkeypatch.setenv(compiled.SWITCH, "0")
        ops = unit(x)
        assert not unit.compiled
    assert logits.shape == released.shape
    torch.testing.assert_close(logits, ops, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, released, rtol=1e-5, atol=1e-5)


def test_counters_traces_and_training_see_the_ops(switched_on):
    unit = _unit(16, 1)
    x = torch.randn(1, 16, 8, 8)
    with torch.inference_mode():
        unit(x)
        assert unit.compiled
        with FlopCounterMode(display=False) as counter:
            unit(x)
        assert not unit.compiled  # a dispatch mode must see the products
        assert counter.get_total_flops() > 0
    with torch.no_grad():
        torch.jit.trace(unit, x, check_trace=False)
    assert not unit.compiled
    unit.train()
    unit(x).sum().backward()  # autograd records the ops
    assert not unit.compiled and unit.conv.weight.grad is not None


def test_a_failed_build_leaves_the_ops_running(monkeypatch):
    monkeypatch.setenv(compiled.SWITCH, "1")
    monkeypatch.setattr(compiled, "_BUILT", {"module": None})  # as a failed build leaves it
    unit = _unit(8, 2)
    x = torch.randn(2, 8, 9, 9)
    with torch.inference_mode():
        logits = unit(x)
    assert not unit.compiled
    torch.testing.assert_close(logits, unit.conv(x) + unit.fc(x.mean((2, 3)))[:, :, None, None])


@pytest.mark.parametrize("name", ["resnet50_dynconv", "mobilenetv2_100_dynconv"])
@pytest.mark.parametrize("source", [MaskSource("blob", 0.3), MaskSource("blob", 1.0)])
def test_a_model_with_compiled_units_runs_as_with_the_ops(switched_on, monkeypatch, name, source):
    """Sparse (auto) with the compiled units gives the masked output of PyTorch's ops, and
    every block's record says its unit ran compiled."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(2, 3, 64, 64)
    set_mask_source(model, source)
    set_granularity(model, "auto", tile=4)
    with torch.inference_mode():
        sparse = set_execution(model, "sparse")(x)
        ran = {b.implementation for b in spatial_blocks(model)}
        monkeypatch.setenv(compiled.SWITCH, "0")
        masked = set_execution(model, "masked")(x)
    assert all(r.startswith("sparse/") and r.endswith(f"+{COMPILED_UNIT}") for r in ran)
    assert {b.implementation for b in spatial_blocks(model)} == {"masked"}
    torch.testing.assert_close(sparse, masked, rtol=1e-4, atol=1e-4)
