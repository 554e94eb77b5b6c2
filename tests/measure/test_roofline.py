"""The roofline floor of single layers, by hand, and the per-layer figures of operators."""

import math

import pytest
import torch
from torch import nn

from dynbench.measure.roofline import floor_ms, layer_work
from dynbench.ops.condconv import CondConv2d
from dynbench.ops.odconv import ODConv2d


class OneConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.relu(self.conv(x))


def test_a_single_conv_layer_floor_is_the_hand_computed_bound():
    layers = layer_work(OneConv(), torch.randn(1, 16, 20, 20))
    assert [(w.layer, w.type) for w in layers] == [("conv", "Conv2d")]
    (work,) = layers
    madds = 32 * 20 * 20 * 16 * 3 * 3  # every output pixel: 16 x 3 x 3 multiply-adds
    weight_bytes = 32 * 16 * 3 * 3 * 4
    activation_bytes = (16 + 32) * 20 * 20 * 4  # input and output, fp32
    assert (work.madds, work.weight_bytes, work.activation_bytes) == (
        madds,
        weight_bytes,
        activation_bytes,
    )
    stored = [work.as_json()]
    # compute-bound: 2,949,120 MAdds at 1 GMAdds/s = 2.949 ms > 95,744 bytes at 1 GB/s
    assert floor_ms(stored, 1e9, 1e9) == pytest.approx(1e3 * madds / 1e9, rel=1e-12)
    # memory-bound at a fast GEMM: bytes / bandwidth
    bytes_ms = 1e3 * (weight_bytes + activation_bytes) / 1e9
    assert floor_ms(stored, 1e13, 1e9) == pytest.approx(bytes_ms, rel=1e-12)
    assert floor_ms(stored, 2e9, 5e7) == pytest.approx(
        1e3 * max(madds / 2e9, (weight_bytes + activation_bytes) / 5e7), rel=1e-12
    )


def test_a_kernel_dynamic_layer_reads_all_its_kernels():
    op = CondConv2d(8, 8, 3, stride=1, padding=1, num_kernels=4).eval()
    (work,) = layer_work(nn.Sequential(op), torch.randn(1, 8, 10, 10))
    assert work.weight_bytes == 4 * op.weight_count()
    assert op.weight_count() == 4 * 8 * 8 * 3 * 3 + 8 * 4 + 4  # K kernels and the router
    parts = op.analytic_madds((1, 8, 10, 10), (1, 8, 10, 10))
    assert work.madds == sum(parts.values()) and parts["aggregation"] > 0


def test_odconv_layer_counts_its_attention_and_mixing():
    op = ODConv2d(16, 16, 3, stride=2, padding=1, num_kernels=4).eval()
    (work,) = layer_work(nn.Sequential(op), torch.randn(1, 16, 8, 8))
    assert work.activation_bytes == (16 * 8 * 8 + 16 * 4 * 4) * 4
    assert work.weight_bytes == 4 * sum(p.numel() for p in op.parameters())
    assert work.madds > 16 * 4 * 4 * 16 * 9
    assert math.isfinite(floor_ms([work.as_json()], 1e10, 1e10))


def test_a_mixed_kernel_is_counted_written_and_read_per_route():
    """The mixed route forms one kernel per sample (counted twice: written, read back);
    ODConv's input route with one kernel forms none but unfolds its input."""
    op = CondConv2d(8, 8, 3, stride=1, padding=1, num_kernels=4).eval()
    (work,) = layer_work(nn.Sequential(op), torch.randn(2, 8, 10, 10))
    assert op.implementation() == "fast/mixed"
    assert op.bias is None and work.materialised_bytes == 2 * 2 * 8 * 8 * 9 * 4
    assert work.bytes == work.weight_bytes + work.activation_bytes + work.materialised_bytes
    odconv = ODConv2d(16, 32, 3, stride=1, padding=1, num_kernels=1).eval()
    for input_side, expected in ((False, 32 * 16 * 9), (True, 16 * 9 * 5 * 5)):
        odconv.input_side = input_side
        (work,) = layer_work(nn.Sequential(odconv), torch.randn(1, 16, 5, 5))
        assert work.materialised_bytes == 2 * expected * 4
    stored = [{**work.as_json(), "madds": 0}]
    assert floor_ms(stored, 1e9, 1e9) == pytest.approx(1e3 * work.bytes / 1e9, rel=1e-12)
    del stored[0]["materialised_bytes"]  # a store from before: no intermediates counted
    assert floor_ms(stored, 1e9, 1e9) == pytest.approx(
        1e3 * (work.weight_bytes + work.activation_bytes) / 1e9, rel=1e-12
    )
