"""ODConv's input route with its unfold scaled in one compiled pass
(dynbench.ops.compiled_unfold): F.unfold's rows times a_c x a_s, the naive outputs, and the
record says when it ran."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dynbench.ops import compiled_unfold
from dynbench.ops.odconv import COMPILED_UNFOLD
from tests.ops.test_compiled_kernel import _layer, check_against_ops_and_naive


@pytest.mark.parametrize(
    "channels, size, k, stride, padding",
    [(4, (7, 7), 3, 1, 1), (4, (14, 13), 3, 2, 1), (3, (5, 6), 3, 1, 0), (2, (6, 7), 5, 2, 2),
     (2, (1, 1), 3, 1, 1), (2, (2, 3), 3, 3, 1), (2, (28, 28), 3, 1, 1), (3, (4, 4), 1, 1, 0)],
)  # fmt: skip
def test_the_scaled_unfold_is_unfold_times_the_row_scales(
    switched_on, channels, size, k, stride, padding
):
    torch.manual_seed(channels + size[0] + k)
    x = torch.randn(2, channels, *size)
    spatial, channel = torch.rand(2, k * k), torch.rand(2, channels)
    with torch.inference_mode():
        scaled = compiled_unfold.scaled_unfold(x, spatial, channel, k, stride, padding)
        plain = compiled_unfold.scaled_unfold(x, None, None, k, stride, padding)
    cols = F.unfold(x, k, 1, padding, stride)
    rows = (channel.view(2, channels, 1) * spatial.view(2, 1, k * k)).view(2, -1, 1)
    torch.testing.assert_close(plain, cols, rtol=0, atol=0)
    torch.testing.assert_close(scaled, cols * rows, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n", [1, 4])
def test_the_input_route_with_the_compiled_unfold_gives_the_naive_output(
    switched_on, monkeypatch, n
):
    torch.manual_seed(n)
    op = _layer(32, 48, 3, 1, n)
    op.input_side = True
    x = torch.randn(1, 32, 6, 6)
    check_against_ops_and_naive(op, x, monkeypatch, "fast/input", COMPILED_UNFOLD)
    assert op.implementation() == "naive"  # the check ends on the naive path


def test_scales_of_another_dtype_leave_the_ops_running(switched_on):
    x = torch.randn(1, 4, 5, 5)
    with torch.inference_mode():
        spatial = torch.rand(1, 9, dtype=torch.float64)
        assert compiled_unfold.scaled_unfold(x, spatial, None, 3, 1, 1) is None
        assert compiled_unfold.scaled_unfold(x, spatial.float(), None, 3, 1, 1) is not None
