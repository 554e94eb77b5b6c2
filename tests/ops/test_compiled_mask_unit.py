"""Spatial DynConv's compiled mask-unit logits (dynbench.ops.compiled_mask_unit), from the GEMM's
tap maps and as one stencil over the input: the same logits as PyTorch's ops and as the
released unit (conv + Linear on the pooled input), the record says which ran, and they step
aside for counters, traces and training."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dynbench.models import create_model
from dynbench.models.masked_blocks import (
    UNIT_SUFFIXES,
    set_execution,
    set_granularity,
    set_mask_source,
    spatial_blocks,
)
from dynbench.ops import compiled, dynconv
from dynbench.ops.dynconv import COMPILED, OPS, STENCIL, STENCIL_MAX_ROWS, MaskSource, MaskUnit


def _unit(channels: int, stride: int) -> MaskUnit:
    unit = MaskUnit(channels, stride).eval()
    with torch.no_grad():
        unit.conv.bias.fill_(0.3)
        unit.fc.bias.fill_(-0.2)
    return unit


@pytest.mark.parametrize("stencil", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(
    "stride, size",
    [
        (1, (6, 5)), (2, (7, 8)), (2, (8, 8)), (3, (10, 7)), (1, (1, 1)), (2, (1, 2)),
        (1, (2, 3)), (1, (3, 1)), (1, (1, 4)), (1, (9, 2)),
    ],
)  # fmt: skip
def test_compiled_logits_are_the_ops_and_the_released_units(
    switched_on, monkeypatch, stride, size, layout, batch, stencil
):
    """Both loops, on maps down to one row or column: the stencil where the rule allows it
    (stride 1, an NCHW input), the GEMM and its loop otherwise or where the rule is off."""
    if not stencil:
        monkeypatch.setattr(dynconv, "STENCIL_MAX_ROWS", 0)
    torch.manual_seed(stride * 31 + size[0] + batch)
    unit = _unit(12, stride)
    x = torch.randn(batch, 12, *size).contiguous(memory_format=layout)
    with torch.inference_mode():
        logits = unit(x)
        assert unit.ran == (STENCIL if stencil and stride == 1 and x.is_contiguous() else COMPILED)
        released = unit.conv(x) + unit.fc(x.mean((2, 3)))[:, :, None, None]
        monkeypatch.setenv(compiled.SWITCH, "0")
        ops = unit(x)
        assert unit.ran == OPS
    assert logits.shape == released.shape
    torch.testing.assert_close(logits, ops, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, released, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_counters_traces_and_training_see_the_ops(switched_on, stride):
    unit = _unit(16, stride)
    x = torch.randn(1, 16, 8, 8)
    with torch.inference_mode():
        unit(x)
        assert unit.ran == (STENCIL if stride == 1 else COMPILED)
        with FlopCounterMode(display=False) as counter:
            unit(x)
        assert unit.ran == OPS  # a dispatch mode must see the products
        assert counter.get_total_flops() > 0
    with torch.no_grad():
        torch.jit.trace(unit, x, check_trace=False)
    assert unit.ran == OPS
    unit.train()
    unit(x).sum().backward()  # autograd records the ops
    assert unit.ran == OPS and unit.conv.weight.grad is not None


@pytest.mark.parametrize(
    "channels, size, stride, ran",
    [
        (24, 56, 1, STENCIL),  # MobileNetV2's first masked block: 1344 channel rows
        (160, 7, 1, STENCIL),
        (64, 32, 1, STENCIL),  # 2048 rows, the rule's bound
        (64, 56, 1, COMPILED),  # ResNet-50's first block: 3584 rows
        (2048, 7, 1, COMPILED),
        (8, 16, 2, COMPILED),  # a strided unit: the stencil is stride 1 only
    ],
)
def test_the_stencil_runs_on_small_stride_1_inputs(switched_on, channels, size, stride, ran):
    assert STENCIL_MAX_ROWS == 2048
    unit = _unit(channels, stride)
    x = torch.randn(1, channels, size, size)
    with torch.inference_mode():
        logits = unit(x)
        assert unit.ran == ran
        released = unit.conv(x) + unit.fc(x.mean((2, 3)))[:, :, None, None]
    torch.testing.assert_close(logits, released, rtol=1e-5, atol=1e-5)


def test_a_failed_build_leaves_the_ops_running(monkeypatch):
    monkeypatch.setenv(compiled.SWITCH, "1")
    monkeypatch.setattr(compiled, "_BUILT", {"module": None})  # as a failed build leaves it
    unit = _unit(8, 2)
    x = torch.randn(2, 8, 9, 9)
    with torch.inference_mode():
        logits = unit(x)
    assert unit.ran == OPS
    torch.testing.assert_close(logits, unit.conv(x) + unit.fc(x.mean((2, 3)))[:, :, None, None])


@pytest.mark.parametrize(
    "name, loops",
    [
        ("resnet50_dynconv", {STENCIL, COMPILED}),  # its strided blocks' units run the GEMM
        ("mobilenetv2_100_dynconv", {STENCIL}),
    ],
)
@pytest.mark.parametrize("source", [MaskSource("blob", 0.3), MaskSource("blob", 1.0)])
def test_a_model_with_compiled_units_runs_as_with_the_ops(
    switched_on, monkeypatch, name, loops, source
):
    """Sparse (auto) with the compiled units gives the masked output of PyTorch's ops, and
    every block's record says which of the unit's loops ran (the GEMM's also where a sparse
    block handed on channels-last maps, which the stencil does not read)."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(2, 3, 64, 64)
    set_mask_source(model, source)
    set_granularity(model, "auto", tile=4)
    with torch.inference_mode():
        sparse = set_execution(model, "sparse")(x)
        ran = [(b.implementation, b.masker.ran) for b in spatial_blocks(model)]
        monkeypatch.setenv(compiled.SWITCH, "0")
        masked = set_execution(model, "masked")(x)
    for implementation, unit in ran:
        assert implementation.startswith("sparse/")
        assert implementation.endswith(UNIT_SUFFIXES[unit])
    assert loops <= {unit for _, unit in ran} <= {STENCIL, COMPILED}
    assert {b.implementation for b in spatial_blocks(model)} == {"masked"}
    torch.testing.assert_close(sparse, masked, rtol=1e-4, atol=1e-4)
