"""Channels-last for models with 5-D parameters (the K kernels of a dynamic conv)."""

import copy

import pytest
import torch

from dynbench.measure.layout import to_channels_last
from dynbench.models import create_model


@pytest.mark.parametrize(
    "name", ["resnet18_condconv_8x", "resnet18_odconv_4x", "resnet18_dyconv_4x"]
)
def test_channels_last_keeps_the_function_of_a_dynamic_model(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert any(p.dim() == 5 for p in model.parameters())
    converted = to_channels_last(copy.deepcopy(model))
    static = [m.weight for m in converted.modules() if type(m) is torch.nn.Conv2d]
    assert static and all(p.is_contiguous(memory_format=torch.channels_last) for p in static)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        got = converted(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
