"""Spatial DynConv: the mask unit, dilation, mask sources and their densities."""

import pytest
import torch
import torch.nn.functional as F

from dynbench.ops.dynconv import MASK_SOURCES, MaskSource, MaskUnit, dilate


def _dilate_by_hand(mask: torch.Tensor, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """Input position (r, c) is read by output (i, j) when |r - s i| <= 1 and |c - s j| <= 1."""
    out = torch.zeros(mask.shape[0], 1, *size)
    for n, i, j in mask[:, 0].nonzero().tolist():
        for r in range(stride * i - 1, stride * i + 2):
            for c in range(stride * j - 1, stride * j + 2):
                if 0 <= r < size[0] and 0 <= c < size[1]:
                    out[n, 0, r, c] = 1
    return out


@pytest.mark.parametrize("stride, size", [(1, (9, 7)), (2, (10, 8)), (2, (9, 7)), (1, (4, 4))])
def test_dilation_is_the_positions_a_3x3_window_reads(stride, size):
    out_size = (-(-size[0] // stride), -(-size[1] // stride))
    gen = torch.Generator().manual_seed(stride + size[0])
    mask = (torch.rand(2, 1, *out_size, generator=gen) > 0.7).float()
    mask[0, 0, 0, -1] = 1  # touching the border
    torch.testing.assert_close(dilate(mask, stride, size), _dilate_by_hand(mask, stride, size))
    # the window of a 3x3 conv really reads exactly these positions
    x = torch.zeros(2, 1, *size, requires_grad=True)
    (F.conv2d(x, torch.ones(1, 1, 3, 3), stride=stride, padding=1) * mask).sum().backward()
    torch.testing.assert_close((x.grad != 0).float(), dilate(mask, stride, size))


def test_mask_unit_shapes_and_parameters():
    unit = MaskUnit(64, stride=2)
    assert sum(p.numel() for p in unit.parameters()) == 9 * 64 + 1 + 64 + 1
    logits = unit(torch.randn(3, 64, 14, 14))
    assert logits.shape == (3, 1, 7, 7)
    assert unit.madds((3, 1, 7, 7)) == 3 * 49 * (9 * 64 + 1)
    unit.eval()
    torch.testing.assert_close(unit.hard(logits), (logits >= 0).float())


def test_training_mask_is_hard_forward_and_soft_backward():
    unit = MaskUnit(8).train()
    logits = torch.randn(2, 1, 5, 5, requires_grad=True)
    hard = unit.hard(logits)
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    hard.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", MASK_SOURCES)
@pytest.mark.parametrize("density", [0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
def test_density_is_met_within_one_position(kind, density):
    unit = MaskUnit(4).eval()
    logits = unit(torch.randn(3, 4, 13, 11))
    mask = MaskSource(kind, density, seed=3).mask(logits, unit, block_index=5)
    per_sample = mask.sum((1, 2, 3))
    assert torch.all((per_sample - density * 13 * 11).abs() <= 1)
    again = MaskSource(kind, density, seed=3).mask(logits, unit, block_index=5)
    torch.testing.assert_close(mask, again)  # same seed, same masks


def test_sources_have_their_shapes():
    unit = MaskUnit(4).eval()
    logits = torch.zeros(1, 1, 16, 16)
    blob = MaskSource("blob", 0.25).mask(logits, unit, 0)[0, 0]
    assert blob[8, 8] == 1 and blob[0, 0] == 0 and blob[0].sum() == 0  # centred
    patch = MaskSource("patch", 0.25, patch=4).mask(logits, unit, 0)[0, 0]
    tiles = patch.view(4, 4, 4, 4).sum((1, 3))  # active positions per 4 x 4 tile
    assert sorted(tiles.flatten().tolist()) == [0.0] * 12 + [16.0] * 4
    unit_mask = MaskSource("unit", 0.5).mask(torch.arange(16.0).view(1, 1, 4, 4), unit, 0)
    assert unit_mask.view(-1).tolist() == [0.0] * 8 + [1.0] * 8  # the top logits
    with pytest.raises(ValueError, match="needs a density"):
        MaskSource("random")
    with pytest.raises(ValueError, match="accepted: random, blob, patch, unit"):
        MaskSource("stripes", 0.5)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("stride, size", [(1, (6, 5)), (2, (7, 8))])
def test_mask_unit_is_its_conv_plus_its_linear_on_the_pooled_input(stride, size, layout, batch):
    """Both of the unit's GEMMs (on an NCHW map and on channels-last rows) are the conv
    plus the Linear on the pooled input."""
    torch.manual_seed(stride)
    unit = MaskUnit(12, stride=stride)
    x = torch.randn(batch, 12, *size).contiguous(memory_format=layout)
    expected = unit.conv(x) + unit.fc(x.mean((2, 3)))[:, :, None, None]
    torch.testing.assert_close(unit(x), expected, rtol=1e-5, atol=1e-5)


def test_the_unit_source_ranks_the_logits_where_they_are():
    # the top-k runs on the logits' device, no copy to the host per block: a meta tensor
    # (which has no data to copy) stands in for a GPU's
    logits = torch.empty(2, 1, 6, 6, device="meta")
    mask = MaskSource("unit", 0.5).mask(logits, MaskUnit(4), 0)
    assert mask.device.type == "meta" and mask.shape == (2, 1, 6, 6)


@pytest.mark.parametrize("size", [14, 56, 224])
def test_the_blob_is_the_positions_nearest_its_centre(size):
    # the random tie-break only orders positions at equal distance, whatever the size
    mask = MaskSource("blob", 0.3, seed=1).mask(torch.zeros(2, 1, size, size), MaskUnit(4), 3)
    offset = 2 * torch.arange(size) + 1 - size  # from the centre, in half positions: exact
    distance = (offset[:, None] ** 2 + offset[None, :] ** 2).expand(2, size, size)
    on = mask[:, 0] == 1
    for n in range(2):
        assert distance[n][on[n]].max() <= distance[n][~on[n]].min()
    assert not torch.equal(mask[0], mask[1])  # the ring's ties broken apart per sample


def test_mask_unit_keeps_its_columns_only_while_the_weights_are_unchanged():
    """Without a gradient the (10, C) GEMM operand is kept across calls; a weight written
    in place (a load_state_dict, an optimiser step) is seen at the next call."""
    torch.manual_seed(0)
    unit = MaskUnit(6, stride=2).eval()
    x = torch.randn(2, 6, 9, 7)
    with torch.inference_mode():
        first = unit(x)
        kept = unit.columns(unit.conv.weight, unit.fc.weight)
        assert unit.columns(unit.conv.weight, unit.fc.weight) is kept
    with torch.no_grad():
        unit.conv.weight.mul_(2)
    with torch.inference_mode():
        second = unit(x)
    expected = unit.conv(x) + unit.fc(x.mean((2, 3)))[:, :, None, None]
    torch.testing.assert_close(second, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(first, second)
    # with a gradient recorded the columns are built afresh and the weights get theirs
    unit(x).sum().backward()
    assert unit.conv.weight.grad is not None and unit.fc.weight.grad is not None
