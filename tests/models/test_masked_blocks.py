"""Spatial DynConv models: exact sizes, masks where the released code puts them, and the
masked execution against the dense one."""

import pytest
import torch

from dynbench.measure.params import count_params
from dynbench.models import create_model
from dynbench.models.layers import BlockSpec
from dynbench.models.masked_blocks import (
    SpatialBasicBlock,
    SpatialBlock,
    set_execution,
    set_mask_source,
    spatial_blocks,
)
from dynbench.models.mobilenetv2 import InvertedResidual
from dynbench.models.resnet import BasicBlock, BlockPlace, Bottleneck
from dynbench.models.zoo_dynconv import spatial, spatial_layers
from dynbench.ops.dynconv import MaskSource

# The released classification code's sizes (ResNet-50/101); for the others the static
# model plus 10 C_in + 2 per mask unit (3x3 conv with bias, Linear with bias), C_in being each
# block's input channels (a stage's first block takes the previous stage's width).
PARAMS = {
    "resnet50_dynconv": 25_688_264,
    "resnet101_dynconv": 44_854_506,
    "resnet18_dynconv": 11_689_512 + 10 * (3 * 64 + 2 * 128 + 2 * 256 + 512) + 2 * 8,
    "resnet34_dynconv": 21_797_672 + 10 * (4 * 64 + 4 * 128 + 6 * 256 + 2 * 512) + 2 * 16,
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_exact_params(name):
    assert count_params(create_model(name))["params"] == PARAMS[name]


def test_mask_units_where_the_released_code_puts_them():
    assert len(list(spatial_blocks(create_model("resnet50_dynconv")))) == 16
    mobile = create_model("mobilenetv2_100_dynconv")
    blocks = list(spatial_blocks(mobile))
    # stride-1 blocks with a residual: 1 + 2 + 3 + 2 + 2 of the 17 inverted residuals
    assert len(blocks) == 10
    assert all(b.block.use_res_connect for b in blocks)
    extra = count_params(mobile)["params"] - 3_504_872
    assert extra == sum(10 * b.masker.fc.in_features + 2 for b in blocks)


def _block(kind: str, stride: int) -> SpatialBlock:
    from dynbench.models.layers import LayerFactory

    layers = LayerFactory()
    if kind == "bottleneck":
        down = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 1, stride, bias=False),
                                   torch.nn.BatchNorm2d(32))  # fmt: skip
        block = Bottleneck(layers, BlockPlace(16, stride, 0, 1), 8, down)
    elif kind == "basic":
        down = None if stride == 1 else torch.nn.Sequential(
            torch.nn.Conv2d(16, 16, 1, stride, bias=False), torch.nn.BatchNorm2d(16))  # fmt: skip
        block = BasicBlock(layers, BlockPlace(16, stride, 0, 1), 16, down)
    else:
        block = InvertedResidual(layers, 16, 16, 1, 6, 0, 1)
    wrapped = spatial(block, BlockSpec(16, 16, 0, 1))
    for bn in (m for m in wrapped.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
    return wrapped.eval()


CASES = [("bottleneck", 1), ("bottleneck", 2), ("basic", 1), ("basic", 2), ("inverted", 1)]


@pytest.mark.parametrize("kind, stride", CASES)
def test_full_mask_equals_dense_and_empty_mask_passes_the_input_through(kind, stride):
    torch.manual_seed(0)
    block = _block(kind, stride)
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        block.execution = "dense"
        dense = block(x)
        block.execution = "masked"
        block.source = MaskSource("random", 1.0)
        torch.testing.assert_close(block(x), dense)
        block.source = MaskSource("random", 0.0)
        empty = block(x)
    b = block.block
    identity = x if kind == "inverted" else b._identity(x)
    expected = identity if kind == "inverted" else torch.relu(identity)
    torch.testing.assert_close(empty, expected)


@pytest.mark.parametrize("kind, stride", CASES)
def test_inactive_positions_take_the_shortcut_only(kind, stride):
    torch.manual_seed(1)
    block = _block(kind, stride)
    block.source = MaskSource("random", 0.3, seed=2)
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        out = block(x)
        mask = block.masks["mask"]
        identity = x if kind == "inverted" else block.block._identity(x)
    off = mask.expand_as(out) == 0
    shortcut = identity if kind == "inverted" else torch.relu(identity)
    torch.testing.assert_close(out[off], shortcut[off])
    assert not torch.allclose(out[~off], shortcut[~off])


def test_model_executions_switch_together():
    model = create_model("resnet18_dynconv").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        dense = set_execution(model, "dense")(x)
        set_execution(model, "masked")
        set_mask_source(model, MaskSource("blob", 1.0))
        torch.testing.assert_close(model(x), dense, rtol=1e-4, atol=1e-5)
    assert all(b.execution == "masked" for b in spatial_blocks(model))
    with pytest.raises(ValueError, match="accepted: dense, masked"):
        set_execution(model, "sparse-ish")


def test_the_variants_factory_gives_residual_blocks_a_mask_unit():
    from dynbench.models.layers import LayerFactory

    layers, plain = spatial_layers(), LayerFactory()
    spec = BlockSpec(16, 16, 3, 8)
    basic = BasicBlock(plain, BlockPlace(16, 1, 3, 8), 16, None)
    wrapped = layers.wrap_block(basic, spec)
    assert isinstance(wrapped, SpatialBasicBlock)
    assert wrapped.block is basic and wrapped.index == 3 and wrapped.masker.fc.in_features == 16
    # an inverted residual without a residual connection (stride 2) stays as it is
    strided = InvertedResidual(plain, 16, 24, 2, 6, 3, 8)
    assert layers.wrap_block(strided, spec) is strided


@pytest.mark.parametrize("name", ["resnet50_dynconv", "mobilenetv2_100_dynconv"])
@pytest.mark.parametrize(
    "source", [MaskSource("blob", 1.0), MaskSource("blob", 0.9), MaskSource("unit")]
)
def test_auto_dense_choice_runs_the_plain_block_where_the_masks_are_full(name, source):
    """Where auto chose the dense branch, a block whose masks are all ones runs its plain
    block (a full mask costs the dense block plus the mask unit), one with a mask to apply
    runs the masked execution; the outputs equal the masked run's on every call."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(2, 3, 64, 64)
    set_mask_source(model, source)
    plain = []
    for block in spatial_blocks(model):
        block.block.register_forward_hook(lambda module, args, out, i=block.index: plain.append(i))
    with torch.no_grad():
        masked = set_execution(model, "masked")(x)
        set_execution(model, "sparse")
        first = model(x)
        plain.clear()
        again = model(x)
    dense = [b for b in spatial_blocks(model) if b.ran_granularity == "dense"]
    assert dense and all(b.implementation == "sparse/dense" for b in dense)
    full = {b.index for b in dense if all(bool(m.all()) for m in b.masks.values())}
    assert set(plain) == full
    if source == MaskSource("blob", 1.0):
        assert full == {b.index for b in spatial_blocks(model)}
    torch.testing.assert_close(first, masked, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, masked, rtol=1e-4, atol=1e-4)
