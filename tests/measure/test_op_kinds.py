"""The op-kind test on names and shapes, and the profiler breakdown on small models."""

import pytest
import torch
from torch import nn

from dynbench.measure.op_kinds import OP_KINDS, op_kind, op_kind_times


@pytest.mark.parametrize(
    "name, shapes, kind",
    [
        ("aten::conv2d", [[1, 3, 8, 8], [4, 3, 3, 3]], "conv"),
        ("aten::convolution", [], "conv"),
        ("aten::mm", [[1, 4], [4, 1024]], "kernel mix"),  # K = 4 kernels of 1024 weights
        ("aten::addmm", [[1, 8], [8, 4096]], "kernel mix"),
        ("aten::mm", [[1, 9], [9, 4096]], "other ops"),  # deeper than 8 kernels
        ("aten::mm", [[1, 4], [4, 1023]], "other ops"),  # too few columns
        ("aten::bmm", [[2, 1, 4], [2, 4, 2048]], "other ops"),  # not two matrices
        ("aten::add", [[1, 4], [4, 2048]], "other ops"),
    ],
)
def test_kind_of_an_op(name, shapes, kind):
    assert op_kind(name, shapes) == kind


class _Mixing(nn.Module):
    """A conv, then [1, 4] @ [4, 2048]: one conv and one kernel mix a forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.kernels = nn.Parameter(torch.randn(4, 2048))

    def forward(self, x):
        pooled = self.conv(x).mean((2, 3))
        return torch.mm(pooled, self.kernels)


def test_a_forward_splits_into_its_kinds_and_a_conv_free_model_has_no_conv():
    times = op_kind_times(_Mixing().eval(), torch.randn(1, 3, 16, 16), steps=3)
    assert tuple(times) == OP_KINDS
    assert times["conv"] > 0 and times["kernel mix"] > 0 and times["other ops"] > 0
    assert times["outside ops"] >= 0
    inside = times["conv"] + times["kernel mix"] + times["other ops"]
    assert times["forward"] == pytest.approx(inside + times["outside ops"])
    plain = op_kind_times(nn.Sequential(nn.Linear(8, 8), nn.ReLU()), torch.randn(2, 8), steps=2)
    assert plain["conv"] == 0 and plain["kernel mix"] == 0 and plain["other ops"] > 0
