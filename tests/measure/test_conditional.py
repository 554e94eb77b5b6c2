"""Conditional MAdds of spatial DynConv models, against the released counter's figures."""

import pytest
import torch

from dynbench.measure.conditional import conditional_madds
from dynbench.models import create_model
from dynbench.models.spatial import set_mask_source
from dynbench.ops.dynconv import MaskSource
from tests.models.test_spatial import _block

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


def test_executed_madds_of_a_lone_bottleneck_by_hand():
    block = _block("bottleneck", 2)
    block.source = MaskSource("blob", 0.25)
    x = torch.randn(1, 16, 10, 10)
    block.execution = "sparse"
    sparse, _ = conditional_madds(block, x)
    rows, active = int(block.masks["dilated"].sum()), int(block.masks["mask"].sum())
    downsample = 25 * 16 * 32
    unit = 100 * 16 * 9 + 25 + 16  # taps at every input position, bias at outputs, Linear
    branch = rows * (16 * 8 + 8) + active * ((8 * 8 * 9 + 8) + (8 * 32 + 32))
    assert sparse["executed"] == downsample + unit + branch
    block.execution = "masked"
    masked, _ = conditional_madds(block, x)
    assert masked["executed"] == downsample + unit + 100 * 16 * 8 + 25 * (8 * 8 * 9 + 8 * 32)
    assert masked["dynconv"] == sparse["dynconv"]  # the masks' count, whatever ran


def test_executed_madds_of_a_sparse_inverted_residual():
    block = _block("inverted", 1)
    block.source = MaskSource("blob", 0.25)
    block.execution = "sparse"
    madds, _ = conditional_madds(block, torch.randn(1, 16, 8, 8))
    rows, active = int(block.masks["dilated"].sum()), int(block.masks["mask"].sum())
    hidden = 16 * 6
    unit = 64 * 16 * 9 + 64 + 16
    expand = rows * (16 * hidden + hidden)
    depthwise = 64 * (9 * hidden + hidden)  # over the whole map: cheaper than gathering
    project = active * (hidden * 16 + 16)
    assert madds["executed"] == unit + expand + depthwise + project
