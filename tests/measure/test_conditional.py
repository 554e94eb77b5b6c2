"""Conditional MAdds of spatial DynConv models, against the released counter's figures."""

import pytest
import torch

from dynbench.measure.conditional import conditional_madds
from dynbench.models import create_model
from dynbench.models.masked_blocks import set_execution, set_granularity, set_mask_source
from dynbench.ops.dynconv import MaskSource
from tests.models.test_masked_blocks import _block

# (every mask on, every mask off) at 224 x 224, batch 1: the released counter's convention
TARGETS = {
    "resnet50_dynconv": (4_128_244_267, 518_783_531),
    "resnet101_dynconv": (7_871_176_495, 549_494_575),
}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_released_counter_figures(name):
    model = create_model(name).eval()
    x = torch.randn(1, 3, 224, 224)
    for density, target in zip((1.0, 0.0), TARGETS[name], strict=True):
        set_mask_source(model, MaskSource("random", density))
        madds, detail = conditional_madds(model, x)
        assert madds["dynconv"] == target
        assert all(block["density"] == density for block in detail)


def test_resnet50_all_off_is_stem_downsample_and_mask_units():
    model = create_model("resnet50_dynconv").eval()
    set_mask_source(model, MaskSource("random", 0.0))
    madds, _ = conditional_madds(model, torch.randn(1, 3, 224, 224))
    stem, downsample, mask_units = 118_013_952, 359_661_568, 41_108_011
    assert madds["dynconv"] == stem + downsample + mask_units
    # conv_linear adds the mask units' Linear (C_in each) and the classifier
    linear = sum((64, 256, 256, 256, 512, 512, 512, 512, *[1024] * 5, 1024, 2048, 2048))
    assert madds["conv_linear"] == madds["dynconv"] + linear + 2048 * 1000


def test_a_lone_bottleneck_by_hand():
    block = _block("bottleneck", 2)
    block.source = MaskSource("blob", 0.25)
    x = torch.randn(1, 16, 10, 10)
    madds, detail = conditional_madds(block, x)
    mask, dilated = block.masks["mask"], block.masks["dilated"]
    assert int(mask.sum()) == round(0.25 * 25)  # 5 x 5 outputs
    downsample = 25 * 16 * 32
    conv1 = int(dilated.sum()) * 16 * 8  # 1x1 on the input positions the 3x3 reads
    conv2_conv3 = int(mask.sum()) * (8 * 8 * 9 + 8 * 32)
    mask_unit = 25 * (9 * 16 + 1)
    assert madds["dynconv"] == downsample + conv1 + conv2_conv3 + mask_unit
    assert detail == [
        {"block": 0, "density": 0.24, "dilated_density": round(float(dilated.mean()), 4)}
    ]


def _unit(positions_in: int, positions_out: int, channels: int) -> int:
    """The mask unit as it runs: 9 taps and the Linear's column at every input position,
    the 9 shifted taps summed and the pooled logit's add at every output."""
    return positions_in * 10 * channels + positions_out * (9 + 1)


def test_executed_madds_of_a_lone_bottleneck_by_hand():
    block = _block("bottleneck", 2)
    block.source = MaskSource("blob", 0.25)
    block.granularity = "pixel"
    x = torch.randn(1, 16, 10, 10)
    block.execution = "sparse"
    sparse, detail = conditional_madds(block, x)
    rows, active = int(block.masks["dilated"].sum()), int(block.masks["mask"].sum())
    downsample = 25 * 16 * 32
    unit = _unit(100, 25, 16)
    branch = rows * (16 * 8 + 8) + active * ((8 * 8 * 9 + 8) + (8 * 32 + 32))
    # the downsample runs as a GEMM with its batch norm folded: its bias adds count too
    assert sparse["executed"] == downsample + 25 * 32 + unit + branch
    assert detail[0]["granularity"] == "pixel" and "trial_ms" not in detail[0]
    block.execution = "masked"
    masked, _ = conditional_madds(block, x)
    assert masked["executed"] == downsample + unit + 100 * 16 * 8 + 25 * (8 * 8 * 9 + 8 * 32)
    assert masked["dynconv"] == sparse["dynconv"]  # the masks' count, whatever ran


def test_executed_madds_of_a_tiled_bottleneck_by_hand():
    block = _block("bottleneck", 2)
    block.source = MaskSource("blob", 0.25)  # 6 positions at the centre of the 5 x 5 output
    block.granularity, block.tile = "tile", 2
    block.execution = "sparse"
    madds, detail = conditional_madds(block, torch.randn(1, 16, 10, 10))
    active = int(block.masks["mask"].sum())
    tiles = int(torch.nn.functional.max_pool2d(block.masks["mask"], 2, 2, ceil_mode=True).sum())
    window = (2 - 1) * 2 + 3  # 2 strided outputs a side read 5 positions
    branch = (
        tiles * window**2 * (16 * 8 + 8)  # conv1 on every window position, halo included
        + tiles * 4 * (8 * 8 * 9 + 8)  # the 3x3 at every position of the tiles
        + active * (8 * 32 + 32)  # conv3 at the active positions
    )
    assert madds["executed"] == 25 * (16 * 32 + 32) + _unit(100, 25, 16) + branch
    assert detail[0]["granularity"] == "tile"


def test_auto_granularity_times_each_and_keeps_the_fastest():
    block = _block("basic", 1)
    block.source = MaskSource("random", 0.3)
    block.execution = "sparse"
    _, detail = conditional_madds(block, torch.randn(1, 16, 12, 12))
    trial = detail[0]["trial_ms"]
    assert set(trial) == {"pixel", "tile", "dense"} and all(ms > 0 for ms in trial.values())
    assert detail[0]["granularity"] == min(trial, key=trial.get)
    assert block.implementation == f"sparse/{detail[0]['granularity']}"


def test_executed_madds_of_a_sparse_inverted_residual():
    block = _block("inverted", 1)
    block.source = MaskSource("blob", 0.25)
    block.granularity = "pixel"
    block.execution = "sparse"
    madds, _ = conditional_madds(block, torch.randn(1, 16, 8, 8))
    rows, active = int(block.masks["dilated"].sum()), int(block.masks["mask"].sum())
    hidden = 16 * 6
    unit = _unit(64, 64, 16)
    expand = rows * (16 * hidden + hidden)
    depthwise = 64 * (9 * hidden + hidden)  # over the whole map: cheaper than gathering
    project = active * (hidden * 16 + 16)
    assert madds["executed"] == unit + expand + depthwise + project


def test_auto_granularity_trials_are_not_counted():
    """The trial timings call the downsample shortcut many times; the count sees one call."""
    block = _block("bottleneck", 2)
    block.source = MaskSource("blob", 0.25)
    block.execution = "sparse"
    x = torch.randn(1, 16, 10, 10)
    auto, _ = conditional_madds(block, x)
    block.granularity = block.ran_granularity
    fixed, _ = conditional_madds(block, x)
    assert auto == fixed


def test_auto_dense_choice_counts_every_position_and_is_recorded():
    """Where auto finds the dense branch fastest the block runs it (the mask unit still
    runs) and counts each branch conv at every position of its mask's map."""
    block = _block("bottleneck", 1)
    block.source = MaskSource("blob", 1.0)
    block.execution = "sparse"
    x = torch.randn(1, 16, 10, 10)
    block.granularity = "dense"  # what auto keeps when the dense branch is fastest
    with torch.no_grad():
        out = block(x)
        masked = block.masked(x)
    torch.testing.assert_close(out, masked, rtol=1e-5, atol=1e-5)
    assert block.implementation == "sparse/dense"
    assert block.sparse_positions() == (100, 100, 100)


def test_auto_runs_a_full_mask_dense_without_timing_the_sparse_routes():
    block = _block("bottleneck", 2)
    block.source = MaskSource("blob", 1.0)
    block.execution = "sparse"
    _, detail = conditional_madds(block, torch.randn(1, 16, 10, 10))
    assert detail[0]["granularity"] == "dense" and set(detail[0]["trial_ms"]) == {"dense"}
    assert block.implementation == "sparse/dense"


def test_the_released_count_does_not_depend_on_the_execution():
    """Every execution of the same masks gives the same ``dynconv`` count: a sparse block's
    downsample GEMM is counted although no conv module runs for it."""
    torch.manual_seed(0)
    model = create_model("resnet50_dynconv").eval()
    set_mask_source(model, MaskSource("blob", 0.25))
    x = torch.randn(1, 3, 64, 64)
    counts = {}
    for granularity in ("pixel", "tile"):
        set_granularity(model, granularity, tile=2)
        counts[granularity] = conditional_madds(set_execution(model, "sparse"), x)[0]
    masked = conditional_madds(set_execution(model, "masked"), x)[0]
    assert counts["pixel"]["dynconv"] == counts["tile"]["dynconv"] == masked["dynconv"]
    assert counts["pixel"]["executed"] < masked["executed"]
