"""The row pieces a sparse block is built from: the folded GEMM on either library, the
downsample shortcut as a GEMM, and the residual sum's handing on of maps between blocks."""

import pytest
import torch
from torch import nn

from dynbench.models import create_model
from dynbench.models.masked_blocks import (
    set_execution,
    set_granularity,
    set_mask_source,
    spatial_blocks,
)
from dynbench.ops import dynconv_rows
from dynbench.ops.dynconv import MaskSource
from dynbench.ops.dynconv_rows import (
    HANDED_ON,
    affine,
    fold,
    shortcut,
    shortcut_pairs,
)

FP32 = {"rtol": 1e-5, "atol": 1e-5}


def _conv_bn(c_in: int, c_out: int, k: int = 1, stride: int = 1) -> tuple[nn.Module, nn.Module]:
    conv = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False)
    bn = nn.BatchNorm2d(c_out)
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 1.5)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)
    return conv.eval(), bn.eval()


@pytest.mark.parametrize("onednn", [True, False])
@pytest.mark.parametrize("activation", ["", "relu", "relu6"])
@pytest.mark.parametrize("rows", [3, 200])
def test_affine_equals_the_folded_conv_on_either_library(monkeypatch, onednn, activation, rows):
    torch.manual_seed(rows)
    conv, bn = _conv_bn(24, 40, k=3)
    patches = torch.randn(rows, 3, 3, 24) * 3  # (ky, kx, c_in) patches, as the windows give
    expected = bn(conv(patches.permute(0, 3, 1, 2)))[:, :, 1, 1]  # the centre output
    expected = {"": expected, "relu": expected.relu(), "relu6": expected.clamp(0, 6)}[activation]
    if onednn and not dynconv_rows.ONEDNN_LINEAR:
        pytest.skip("this torch has no oneDNN linear")
    monkeypatch.setattr(dynconv_rows, "ONEDNN_LINEAR", onednn)
    monkeypatch.setattr(dynconv_rows, "ONEDNN_FROM_MADDS", 0)
    with torch.no_grad():
        # only the padded 3x3 conv's centre output reads every tap: compare that one
        out = affine(patches.reshape(rows, -1), fold(conv, bn), activation)
    torch.testing.assert_close(out, expected, **FP32)


def test_affine_leaves_small_products_to_addmm(monkeypatch):
    calls = []
    monkeypatch.setattr(dynconv_rows, "ONEDNN_LINEAR", True)
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: calls.append(a))
    conv, bn = _conv_bn(8, 4)
    with torch.no_grad():
        affine(torch.randn(10, 8), fold(conv, bn))  # 320 MAdds
    assert calls == []


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(9, 9), (10, 7)])
def test_the_downsample_as_a_gemm_equals_the_blocks_own(stride, size):
    torch.manual_seed(stride)
    block = nn.Module()
    block.downsample = nn.Sequential(*_conv_bn(16, 32, stride=stride))
    block._identity = block.downsample
    x = torch.randn(2, 16, *size).contiguous(memory_format=torch.channels_last)
    pairs = shortcut_pairs(block)
    assert len(pairs) == 1
    with torch.no_grad():
        folded = tuple(fold(conv, bn) for conv, bn in pairs)
        torch.testing.assert_close(shortcut(block, x, folded), block.downsample(x), **FP32)


def test_only_a_plain_1x1_downsample_is_folded():
    block = nn.Module()
    block.downsample = None
    assert shortcut_pairs(block) == ()
    block.downsample = nn.Sequential(nn.AvgPool2d(2), *_conv_bn(16, 32))  # ResNet-D style
    assert shortcut_pairs(block) == ()
    block.downsample = nn.Sequential(nn.Conv2d(16, 32, 1, bias=True), nn.BatchNorm2d(32))
    assert shortcut_pairs(block) == ()
    padded = nn.Conv2d(16, 32, 1, padding=1, bias=False)  # not a GEMM over the input's rows
    block.downsample = nn.Sequential(padded, nn.BatchNorm2d(32))
    assert shortcut_pairs(block) == ()


@pytest.mark.parametrize("onednn_from", [0, dynconv_rows.ONEDNN_FROM_MADDS])
@pytest.mark.parametrize("name", ["resnet18_dynconv", "mobilenetv2_100_dynconv"])
def test_a_model_hands_maps_on_without_touching_its_input(monkeypatch, name, onednn_from):
    """Every block after the first takes its input over (the residual sum writes into it),
    the model's own input is never written, and the outputs equal the masked execution's,
    with every product on oneDNN (from 0 MAdds) or at the shipped threshold."""
    monkeypatch.setattr(dynconv_rows, "ONEDNN_FROM_MADDS", onednn_from)
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(1, 3, 64, 64)
    kept = x.clone()
    set_mask_source(model, MaskSource("blob", 0.3))
    set_granularity(model, "pixel")
    held = []
    add = dynconv_rows.add_to_shortcut

    def spy(*args, **kwargs):
        held.append(kwargs["held"])
        return add(*args, **kwargs)

    monkeypatch.setattr("dynbench.ops.dynconv_pixel.add_to_shortcut", spy)
    with torch.no_grad():
        masked = set_execution(model, "masked")(x)
        sparse = set_execution(model, "sparse")(x)
    torch.testing.assert_close(sparse, masked, rtol=1e-4, atol=1e-4)
    assert torch.equal(x, kept)
    blocks = list(spatial_blocks(model))
    assert len(held) == len(blocks)
    handed = dynconv_rows.OWNED_NONNEGATIVE if "resnet" in name else dynconv_rows.OWNED
    # the first block copies its (NCHW) input into channels-last rows: its own copy
    assert held[0] == dynconv_rows.OWNED
    # a block after another spatial block of its stage takes that block's output over
    assert handed in held[1:]


def test_a_map_is_taken_over_once():
    """A second call on a map already taken over borrows it: the mark is removed."""
    torch.manual_seed(1)
    model = create_model("resnet18_dynconv").eval()
    set_mask_source(model, MaskSource("blob", 0.5))
    set_granularity(model, "pixel")
    set_execution(model, "sparse")
    block = list(spatial_blocks(model))[1]  # no downsample: its input is the shortcut
    x = torch.relu(torch.randn(1, 64, 16, 16)).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        block(x.clone())  # choose and keep the route on these masks
        first_input = x.clone()
        setattr(first_input, HANDED_ON, True)
        out = block(first_input)
        assert out.data_ptr() == first_input.data_ptr()  # written in place
        assert not hasattr(first_input, HANDED_ON)
        again = x.clone()
        out_again = block(again)
        assert out_again.data_ptr() != again.data_ptr()
        assert torch.equal(again, x)
    torch.testing.assert_close(out_again, out, **FP32)
