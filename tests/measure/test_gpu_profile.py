"""The profile reader: per-block counts from constructed events and from a real CPU profile."""

import pytest
import torch
from torch import nn

from dynbench.measure.gpu_profile import Event, markdown, profile_blocks, summarise


def _cuda_like_profile() -> list[Event]:
    """Two blocks as a CUDA profile shows them: runtime calls on the host, kernels and a
    copy on the device, the reader's own closing sync, and kineto's device copies of the
    marks."""
    return [
        Event("dynbench block 0", 0, 1000),
        Event("dynbench block 0", 5, 990, on_device=True),
        Event("cudaLaunchKernel", 10, 12),
        Event("conv_kernel", 20, 420, on_device=True),
        Event("dynbench sync", 900, 1000),
        Event("cudaDeviceSynchronize", 901, 999),
        Event("dynbench block 1", 1000, 2500),
        Event("cudaMalloc", 1010, 1100),
        Event("cudaLaunchKernel", 1110, 1112),
        Event("conv_kernel", 1120, 1520, on_device=True),
        Event("cudaStreamSynchronize", 1530, 1600),
        Event("Memcpy DtoH (Device -> Pageable)", 1540, 1545, on_device=True),
        Event("cudaFree", 1610, 1700),
        Event("Memset (Device)", 1650, 1651, on_device=True),
        Event("mix_kernel", 1700, 1900, on_device=True),
        Event("dynbench sync", 2400, 2500),
        Event("cudaDeviceSynchronize", 2401, 2499),
    ]


def test_the_blocks_count_what_makes_one_slow():
    summary = summarise(_cuda_like_profile())
    first, second = summary["blocks"]
    assert first == {
        "block": 0, "host_ms": 1.0, "cudaMalloc": 0, "cudaFree": 0, "syncs": 0,
        "memcpy_dtoh": 0, "kernels": 1, "kernel_ms": 0.4,
    }  # fmt: skip
    assert second == {
        "block": 1, "host_ms": 1.5, "cudaMalloc": 1, "cudaFree": 1, "syncs": 1,
        "memcpy_dtoh": 1, "kernels": 2, "kernel_ms": 0.6,
    }  # fmt: skip
    assert summary["device"]
    assert [op["name"] for op in summary["top"]][:2] == ["conv_kernel", "mix_kernel"]
    assert summary["top"][0] == {"name": "conv_kernel", "calls_per_block": 1.0, "ms_per_block": 0.4}


def test_a_profile_without_blocks_is_an_error():
    with pytest.raises(ValueError, match="no 'dynbench block <i>' ranges"):
        summarise([Event("aten::conv2d", 0, 10)])


def test_a_cpu_profile_of_three_blocks():
    """A real (CPU-only) profile: three blocks, no CUDA calls, the top ops are aten ops,
    the conv among them, each called once per forward."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten()).eval()
    counter = iter(range(100))
    summary = profile_blocks(
        model, torch.randn(2, 3, 16, 16), iterations=4, blocks=3, warmup=1,
        memory_stats=lambda: {"num_device_alloc": next(counter) * 2},
    )  # fmt: skip
    blocks = summary["blocks"]
    assert [b["block"] for b in blocks] == [0, 1, 2] and not summary["device"]
    assert all(b["cudaMalloc"] == b["syncs"] == b["kernels"] == 0 for b in blocks)
    assert all(b["allocator"] == {"num_device_alloc": 2} and b["host_ms"] > 0 for b in blocks)
    conv = next(op for op in summary["top"] if op["name"] == "aten::conv2d")
    assert conv["calls_per_block"] == 4
    table = markdown("tiny", summary)
    assert "top CPU ops (no device activity)" in table and "| aten::conv2d | 4 |" in table


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_profile_counts_kernels_and_leaves_its_own_sync_out():
    """On a GPU: every block runs kernels; a plain conv makes no sync of its own (the
    reader's closing sync is not counted) and one with .item() makes one per call."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).eval().cuda()
    x = torch.randn(4, 3, 16, 16, device="cuda")
    plain = profile_blocks(model, x, iterations=3, blocks=2, warmup=1)
    assert plain["device"] and all(b["kernels"] >= 3 and b["syncs"] == 0 for b in plain["blocks"])

    class Syncs(nn.Module):
        def forward(self, x):
            return model(x).sum().item()

    synced = profile_blocks(Syncs(), x, iterations=3, blocks=2, warmup=1)
    assert all(b["syncs"] + b["memcpy_dtoh"] >= 3 for b in synced["blocks"])
