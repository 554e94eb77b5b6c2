"""The GPU throughput path's bookkeeping, run on the CPU."""

import pytest
import torch
from torch import nn

from dynbench.measure.gpu import measure_throughput


def test_throughput_logic_with_a_fake_timer():
    """The CUDA path's bookkeeping, run on the CPU with a timer standing in for CUDA events."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    calls = []

    def fake_timer(fn, iterations):
        for _ in range(iterations):
            calls.append(fn())
        return 250.0  # ms for all iterations

    result = measure_throughput(
        model, (3, 8, 8), batch=10, iterations=5, warmup=2, device="cpu", timer=fake_timer
    )
    assert len(calls) == 5 and calls[0].shape == (10, 4 * 6 * 6)
    assert result.images_per_s == pytest.approx(10 * 5 / 0.25)
    assert not result.oom


def test_out_of_memory_is_recorded_not_raised():
    class Exploding(nn.Module):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    result = measure_throughput(
        Exploding(), (3, 8, 8), batch=200, iterations=2, warmup=1, device="cpu"
    )
    assert result.oom and result.images_per_s is None


def test_dtype_and_compile_on_the_throughput_path():
    """bf16 weights and batch, channels-last, compiled: the first call timed apart."""
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            seen.append((x.dtype, x.is_contiguous(memory_format=torch.channels_last)))
            return self.conv(x)

    def timer(fn, iterations):
        for _ in range(iterations):
            fn()
        return 100.0

    model = Probe()
    result = measure_throughput(
        model, (3, 8, 8), batch=2, iterations=2, warmup=1, channels_last=True,
        device="cpu", timer=timer, dtype=torch.bfloat16, compile_mode="default",
    )  # fmt: skip
    assert result.compile_s is not None and result.compile_s > 0
    assert result.images_per_s == pytest.approx(2 * 2 / 0.1)
    assert (torch.bfloat16, True) in seen
    assert model.conv.weight.dtype == torch.float32  # handed back as it came


def test_repeated_blocks_give_the_median_and_keep_every_block():
    """Five timed blocks: images/s from the median one, each block kept for the spread."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    blocks = iter([400.0, 100.0, 300.0, 200.0, 500.0])

    def timer(fn, iterations):
        fn()
        return next(blocks)

    result = measure_throughput(
        model, (3, 8, 8), batch=10, iterations=4, warmup=1, device="cpu", timer=timer, repeats=5
    )
    assert result.block_ms == (400.0, 100.0, 300.0, 200.0, 500.0)
    assert result.milliseconds == 300.0
    assert result.spread == pytest.approx((500.0 - 100.0) / 300.0)
    assert result.images_per_s == pytest.approx(10 * 4 / 0.3)
