"""Forward of each operator beside a static nn.Conv2d at representative layer shapes.

Not part of the default run (marked ``bench``); run with

    .venv/bin/python -m pytest -m bench tests/benchmarks --benchmark-enable \
        --benchmark-json reports/op-bench.json

and compare with a saved run via ``--benchmark-compare=0001 --benchmark-compare-fail=median:10%``.
"""

import pytest
import torch
from torch import nn

from dynbench.ops.condconv import CondConv2d
from dynbench.ops.dcd import DCDConv2d
from dynbench.ops.dyconv import DynamicConv2d
from dynbench.ops.odconv import ODConv2d

pytestmark = pytest.mark.bench

SHAPES = {"64x56x56": (64, 56), "256x14x14": (256, 14), "512x7x7": (512, 7)}
OPERATORS = {
    "static": lambda c: nn.Conv2d(c, c, 3, 1, 1, bias=False),
    "condconv_8x": lambda c: CondConv2d(c, c, 3, 1, 1, num_kernels=8),
    "dyconv_4x": lambda c: DynamicConv2d(c, c, 3, 1, 1, num_kernels=4),
    "dcd": lambda c: DCDConv2d(c, c, 3, 1, 1),
    "odconv_1x": lambda c: ODConv2d(c, c, 3, 1, 1, num_kernels=1),
    "odconv_4x": lambda c: ODConv2d(c, c, 3, 1, 1, num_kernels=4),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_forward(benchmark, operator, shape, batch):
    channels, size = SHAPES[shape]
    if batch == 32 and channels == 64:
        pytest.skip("64x56x56 at batch 32 takes minutes on one thread")
    op = OPERATORS[operator](channels).eval()
    x = torch.randn(batch, channels, size, size)
    benchmark.group = f"{shape} batch {batch}"
    benchmark.extra_info.update({"operator": operator, "threads": 1})
    with torch.inference_mode():
        out = benchmark(op, x)
    assert out.shape == (batch, channels, size, size)
