"""Sparse execution of spatial DynConv blocks equals the masked one at every position."""

import pytest
import torch

from dynbench.models import create_model
from dynbench.models.masked_blocks import (
    set_execution,
    set_granularity,
    set_mask_source,
    spatial_blocks,
)
from dynbench.ops.dynconv import MaskSource
from dynbench.ops.dynconv_pixel import neighbour_rows
from tests.models.test_masked_blocks import _block

FP32 = {"rtol": 1e-5, "atol": 1e-5}


def _both(block, x, granularity="pixel"):
    block.granularity = granularity
    with torch.no_grad():
        block.execution = "masked"
        masked = block(x)
        block.execution = "sparse"
        sparse = block(x)
    assert block.ran == "sparse" and block.ran_granularity == granularity
    return masked, sparse


@pytest.mark.parametrize(
    "kind, stride",
    [
        ("bottleneck", 1),
        ("bottleneck", 2),
        ("basic", 1),
        ("basic", 2),
        ("inverted", 1),
    ],  # fmt: skip
)
@pytest.mark.parametrize("size", [(9, 9), (10, 7)])
@pytest.mark.parametrize("granularity, tile", [("pixel", 8), ("tile", 2), ("tile", 3), ("tile", 8)])
@pytest.mark.parametrize(
    "source",
    [
        MaskSource("random", 0.0),
        MaskSource("random", 1.0),
        MaskSource("random", 0.3, seed=4),
        MaskSource("patch", 0.5, patch=2),
        MaskSource("blob", 0.1),
    ],  # fmt: skip
    ids=["empty", "full", "random", "patch", "blob"],
)
def test_sparse_equals_masked(kind, stride, size, granularity, tile, source):
    torch.manual_seed(stride + size[1])
    block = _block(kind, stride)
    block.source, block.tile = source, tile
    x = torch.randn(3, 16, *size)  # three samples, each with its own mask
    masked, sparse = _both(block, x, granularity)
    torch.testing.assert_close(sparse, masked, **FP32)
    if source.kind == "random" and 0 < source.density < 1:
        masks = block.masks["mask"]
        assert not torch.equal(masks[0], masks[1])


@pytest.mark.parametrize("granularity", ["pixel", "tile"])
@pytest.mark.parametrize("kind", ["bottleneck", "basic", "inverted"])
def test_masks_touching_the_borders(kind, granularity):
    torch.manual_seed(5)
    block = _block(kind, 1 if kind == "inverted" else 2)
    block.tile = 2
    x = torch.randn(1, 16, 9, 9)
    edge = torch.zeros(1, 1, *((9, 9) if kind == "inverted" else (5, 5)))
    edge[0, 0, 0, :] = edge[0, 0, :, -1] = edge[0, 0, -1, 0] = 1
    block.source = type("Edge", (), {"kind": "unit", "mask": lambda self, logits, unit, i: edge})()
    masked, sparse = _both(block, x, granularity)
    torch.testing.assert_close(sparse, masked, **FP32)


@pytest.mark.parametrize("granularity", ["pixel", "tile", "auto"])
@pytest.mark.parametrize(
    "name", ["resnet50_dynconv", "resnet18_dynconv", "mobilenetv2_100_dynconv"]
)
def test_a_whole_model_sparse_equals_masked(name, granularity):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(2, 3, 64, 64)
    set_mask_source(model, MaskSource("blob", 0.3))
    set_granularity(model, granularity, tile=4)
    with torch.no_grad():
        masked = set_execution(model, "masked")(x)
        sparse = set_execution(model, "sparse")(x)
    ran = {b.implementation for b in spatial_blocks(model)}
    assert ran <= {"sparse/pixel", "sparse/tile", "sparse/dense"}
    assert granularity == "auto" or ran == {f"sparse/{granularity}"}
    torch.testing.assert_close(sparse, masked, rtol=1e-4, atol=1e-4)


def test_a_block_in_training_mode_runs_masked_and_says_so():
    block = _block("inverted", 1).train()
    block.execution = "sparse"
    block(torch.randn(2, 16, 6, 6))
    assert block.ran == "masked"


def test_neighbour_rows_of_a_window():
    active = torch.tensor([[0, 0, 0], [1, 1, 2]])
    rows = neighbour_rows(active, height=4, width=5, stride=2)
    # padded map 6 x 7 per sample: output (0, 0) reads padded rows 0-2, cols 0-2
    assert rows[0].tolist() == [0, 1, 2, 7, 8, 9, 14, 15, 16]
    first = 42 + 2 * 7 + 4  # sample 1, padded row 2, col 4
    assert rows[1].tolist() == [first + dy * 7 + dx for dy in range(3) for dx in range(3)]


@pytest.mark.parametrize("density", [0.3, 1.0])
@pytest.mark.parametrize(
    "kind, stride", [("bottleneck", 1), ("bottleneck", 2), ("basic", 2), ("inverted", 1)]
)
@pytest.mark.parametrize("granularity", ["pixel", "tile", "dense"])
def test_every_route_equals_masked_and_reuses_indices_for_unchanged_masks(
    kind, stride, granularity, density
):
    """pixel, tile and auto's dense branch (masks applied, a full one skipped) equal the
    masked execution on random inputs and blob masks; a second call on the same masks
    reuses the first call's index tensors and gives the same output."""
    torch.manual_seed(stride + int(10 * density))
    block = _block(kind, stride)
    block.source = MaskSource("blob", density)
    x = torch.randn(2, 16, 10, 10)
    masked, sparse = _both(block, x, granularity)
    torch.testing.assert_close(sparse, masked, **FP32)
    runner = block._runners.get(granularity)
    kept = None if runner is None else runner._indices
    with torch.no_grad():
        again = block(x)
    torch.testing.assert_close(again, sparse, rtol=0, atol=0)
    if runner is not None:
        assert runner._indices is kept  # the same masks: the same index tensors
    x2 = torch.randn(2, 16, 12, 12)  # another shape: masks and indices drawn afresh
    masked, sparse = _both(block, x2, granularity)
    torch.testing.assert_close(sparse, masked, **FP32)


@pytest.mark.parametrize("kind, stride", [("bottleneck", 1), ("basic", 2), ("inverted", 1)])
def test_zero_maps_are_kept_for_unchanged_masks_and_cleared_for_new_ones(kind, stride):
    """The pixel blocks' zero-bordered maps are reused while the masks stay (the same rows
    are written again); masks of the same shape but other positions get a fresh map, so no
    row of the old masks leaks into the 3x3 windows."""
    torch.manual_seed(7)
    block = _block(kind, stride)
    x = torch.randn(2, 16, 9, 9)
    block.source = MaskSource("random", 0.4, seed=1)
    _both(block, x)
    runner = block._runners["pixel"]
    (kept,) = runner._zeros.values()
    with torch.no_grad():
        block(x)
    assert next(iter(runner._zeros.values())) is kept
    block.source = MaskSource("random", 0.4, seed=2)  # other positions, same shape
    masked, sparse = _both(block, x)
    torch.testing.assert_close(sparse, masked, **FP32)
    assert next(iter(runner._zeros.values())) is not kept
