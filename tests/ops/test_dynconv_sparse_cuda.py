"""Sparse equals masked on a CUDA device: the CPU tests' cases, with the blocks and inputs
moved there, as the GPU throughput path moves them. Skipped where no CUDA device is present
(scripts/gpu-check.sh runs them on the lent GPU). TF32 is off while they run: cuDNN's
convs would otherwise round to TF32 and the gathered matmuls not."""

import pytest
import torch

from dynbench.models import create_model
from dynbench.models.masked_blocks import (
    set_execution,
    set_granularity,
    set_mask_source,
    spatial_blocks,
)
from dynbench.ops.dynconv import MaskSource
from tests.models.test_masked_blocks import _block
from tests.ops.test_dynconv_sparse import FP32, _both

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SOURCES = [
    MaskSource("random", 0.0),
    MaskSource("random", 1.0),
    MaskSource("random", 0.3, seed=4),
    MaskSource("patch", 0.5, patch=2),
    MaskSource("blob", 0.1),
]


@pytest.fixture(autouse=True)
def no_tf32(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


@pytest.mark.parametrize("kind, stride", [("bottleneck", 1), ("bottleneck", 2), ("basic", 1),
                                          ("basic", 2), ("inverted", 1)])  # fmt: skip
@pytest.mark.parametrize("size", [(9, 9), (10, 7)])
@pytest.mark.parametrize("granularity, tile", [("pixel", 8), ("tile", 2), ("tile", 3), ("tile", 8)])
@pytest.mark.parametrize("source", SOURCES, ids=["empty", "full", "random", "patch", "blob"])
def test_sparse_equals_masked_on_cuda(kind, stride, size, granularity, tile, source):
    torch.manual_seed(stride + size[1])
    block = _block(kind, stride).cuda()
    block.source, block.tile = source, tile
    x = torch.randn(3, 16, *size, device="cuda")
    masked, sparse = _both(block, x, granularity)
    assert sparse.is_cuda
    torch.testing.assert_close(sparse, masked, **FP32)


@pytest.mark.parametrize("granularity", ["pixel", "tile", "auto"])
@pytest.mark.parametrize("name", ["resnet50_dynconv", "mobilenetv2_100_dynconv"])
def test_a_whole_model_sparse_equals_masked_on_cuda(name, granularity):
    torch.manual_seed(0)
    model = create_model(name).eval().cuda()
    x = torch.randn(2, 3, 224, 224, device="cuda")  # the size the GPU figures are taken at
    set_mask_source(model, MaskSource("blob", 0.3))
    set_granularity(model, granularity, tile=4)
    with torch.no_grad():
        masked = set_execution(model, "masked")(x)
        sparse = set_execution(model, "sparse")(x)
    ran = {b.implementation for b in spatial_blocks(model)}
    assert ran <= {"sparse/pixel", "sparse/tile"} and (granularity == "auto" or len(ran) == 1)
    torch.testing.assert_close(sparse, masked, rtol=1e-4, atol=1e-4)
