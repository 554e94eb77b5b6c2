"""The inputs a model hands its layers, and the fast = naive check of every dynamic layer."""

import pytest
import torch
from torch import nn

from dynbench.measure.fast_naive import fast_naive_mismatches, layer_inputs
from dynbench.ops.dyconv import DynamicConv2d


def test_each_layer_of_the_kind_gets_its_own_input_in_the_model_and_no_hook_stays():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    x = torch.randn(2, 3, 5, 5)
    captured = layer_inputs(model, nn.Conv2d, x)
    assert list(captured) == ["0", "2"]
    torch.testing.assert_close(captured["0"][0], x, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(captured["2"][0], torch.relu(model[0](x)), rtol=0, atol=0)
    assert captured["0"][0] is not x  # a clone
    assert all(not m._forward_pre_hooks for m in model.modules())


class _Drifting(DynamicConv2d):
    """A DY-Conv whose naive path is off by 1%: the check must catch it."""

    def forward(self, x):
        out = super().forward(x)
        return out if self.impl == "fast" else out * 1.01


def _model(layer: type) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        DynamicConv2d(3, 8, 3, 1, 1), nn.ReLU(), layer(8, 8, 3, 1, 1, num_kernels=4)
    ).eval()


def test_equal_paths_pass_and_a_drifting_layer_is_named_and_left_fast():
    x = torch.randn(2, 3, 9, 9)
    assert fast_naive_mismatches(_model(DynamicConv2d), x) == []
    drifting = _model(_Drifting)
    assert fast_naive_mismatches(drifting, x) == ["2"]
    assert [m.impl for m in drifting if isinstance(m, DynamicConv2d)] == ["fast", "fast"]


def test_a_failing_naive_path_still_leaves_the_layer_fast():
    class _Broken(DynamicConv2d):
        def forward(self, x):
            if self.impl == "naive":
                raise RuntimeError("naive failed")
            return super().forward(x)

    model = _model(_Broken)
    with pytest.raises(RuntimeError, match="naive failed"):
        fast_naive_mismatches(model, torch.randn(1, 3, 9, 9))
    assert model[2].impl == "fast"


def test_the_hooks_go_even_when_the_forward_fails():
    class Failing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            self.conv(x)
            raise RuntimeError("failed after the conv")

    model = Failing()
    with pytest.raises(RuntimeError, match="failed after the conv"):
        layer_inputs(model, nn.Conv2d, torch.randn(1, 3, 2, 2))
    assert not model.conv._forward_pre_hooks
