"""The GPU throughput path's bookkeeping, run on the CPU."""

import pytest
import torch
from torch import nn

from dynbench.measure.gpu import (
    count_host_syncs,
    measure_throughput,
    timed_blocks,
    wall_clock_timer,
    warm_until_steady,
)


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


def test_warm_up_runs_until_two_blocks_in_a_row_agree():
    blocks = iter([900.0, 400.0, 300.0, 303.0, 300.0])
    warm, steady = warm_until_steady(lambda fn, n: next(blocks), None, 10, 0.02, 8)
    assert warm == (900.0, 400.0, 300.0, 303.0) and steady


def test_warm_up_stops_at_its_bound_and_says_it_never_held_steady():
    blocks = iter([100.0, 150.0, 100.0, 150.0, 100.0])
    warm, steady = warm_until_steady(lambda fn, n: next(blocks), None, 10, 0.02, 3)
    assert warm == (100.0, 150.0, 100.0) and not steady
    assert warm_until_steady(lambda fn, n: 1.0, None, 10, 0.02, 0) == ((), False)


def test_the_allocator_counters_are_read_around_each_block():
    """Each block's deltas: cudaMalloc calls in the second block, a retry in the third;
    a counter this torch lacks is left out, one that is not a counter is ignored."""
    snapshots = iter(
        [
            {"num_alloc_retries": 0, "num_device_alloc": 4, "active_bytes.all.current": 9},
            {"num_alloc_retries": 0, "num_device_alloc": 4, "active_bytes.all.current": 1},
            {"num_alloc_retries": 0, "num_device_alloc": 4},
            {"num_alloc_retries": 0, "num_device_alloc": 7},
            {"num_alloc_retries": 0, "num_device_alloc": 7},
            {"num_alloc_retries": 1, "num_device_alloc": 9},
        ]
    )
    blocks, deltas = timed_blocks(lambda fn, n: 5.0, None, 10, 3, lambda: next(snapshots))
    assert blocks == (5.0, 5.0, 5.0)
    assert deltas == (
        {"num_alloc_retries": 0, "num_device_alloc": 0},
        {"num_alloc_retries": 0, "num_device_alloc": 3},
        {"num_alloc_retries": 1, "num_device_alloc": 2},
    )


def test_the_result_carries_what_shows_steadiness():
    """Warm-up blocks, timed blocks, allocator deltas and the card's state before and
    after, all in the record's detail; the median timed block gives images/s."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    times = iter([50.0, 30.0, 20.0, 20.2, 20.0, 21.0, 20.5])
    calls = []

    def timer(fn, iterations):
        calls.append(iterations)
        fn()
        return next(times)

    states = iter([{"sm_clock_mhz": 1980.0}, {"sm_clock_mhz": 1755.0}])
    counter = iter(range(100))
    result = measure_throughput(
        model, (3, 8, 8), batch=4, iterations=3, warmup=1, device="cpu", timer=timer,
        repeats=3, max_warmup_blocks=6, memory_stats=lambda: {"num_alloc_retries": next(counter)},
        state=lambda: next(states),
    )  # fmt: skip
    assert calls == [3] * 7
    assert result.warmup_ms == (50.0, 30.0, 20.0, 20.2) and result.steady
    assert result.block_ms == (20.0, 21.0, 20.5) and result.milliseconds == 20.5
    assert result.images_per_s == pytest.approx(4 * 3 / 0.0205)
    assert result.allocator == ({"num_alloc_retries": 1},) * 3
    detail = result.detail()
    assert detail["spread"] == pytest.approx(1 / 20.5, abs=1e-4)
    assert detail["gpu_before"] == {"sm_clock_mhz": 1980.0}
    assert detail["gpu_after"] == {"sm_clock_mhz": 1755.0}
    assert detail["warmup_ms"] == [50.0, 30.0, 20.0, 20.2] and detail["steady"] is True
    assert detail["host_syncs"] is None and detail["cudnn_benchmark"] is None  # not CUDA


def test_without_warm_up_blocks_steadiness_is_not_claimed():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    result = measure_throughput(
        model, (3, 8, 8), batch=2, iterations=2, warmup=1, device="cpu",
        timer=lambda fn, n: 10.0,
    )  # fmt: skip
    assert result.warmup_ms == () and result.steady is None
    assert result.gpu_before == {} and result.allocator == ({},)


def test_the_wall_clock_timer_calls_the_function_the_times_asked():
    calls = []
    assert wall_clock_timer(lambda: calls.append(1), 4) >= 0 and len(calls) == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_host_syncs_are_counted_on_cuda():
    x = torch.ones(8, device="cuda")
    assert count_host_syncs(lambda: x * 2) == 0
    assert count_host_syncs(lambda: (x.sum().item(), x.nonzero())) >= 2


def test_the_kept_kernel_buffers_do_not_outlive_the_measurement():
    """The shared per-call kernel buffer and the layers' workspaces are this model's while
    it is timed and are dropped when it is handed back (a GPU would otherwise carry them
    into the next model's peak memory)."""
    from dynbench.ops import buffers
    from dynbench.ops.base import DynamicOp
    from dynbench.ops.dyconv import DynamicConv2d

    model = nn.Sequential(DynamicConv2d(3, 256, 3), nn.Flatten())
    held = []

    def timer(fn, iterations):
        fn()
        held.append(sum(b.numel() for b in buffers._THREAD.workspaces.values()))
        return 1.0

    buffers._THREAD.workspaces = {("mix", torch.float32, torch.device("cpu")): torch.empty(9)}
    measure_throughput(
        model, (3, 4, 4), batch=512, iterations=1, warmup=0, device="cpu", timer=timer
    )  # fmt: skip
    assert held[0] >= 512 * 256 * 3 * 9  # the batch's mixed kernels (>= 4 MiB), not the 9 left
    assert buffers._THREAD.workspaces == {}
    assert all(not m._workspaces for m in model.modules() if isinstance(m, DynamicOp))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_path_fills_every_steadiness_field():
    """On a GPU (scripts/gpu-check.sh runs this): CUDA events, the allocator's counters,
    no host sync in a plain conv's forward, the state read before and after."""
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Flatten())
    result = measure_throughput(
        model, (3, 32, 32), batch=8, iterations=3, warmup=2, repeats=3, max_warmup_blocks=4
    )
    assert result.images_per_s > 0 and len(result.block_ms) == 3 and result.warmup_ms
    assert all("num_alloc_retries" in block for block in result.allocator)
    assert result.host_syncs == 0 and isinstance(result.cudnn_benchmark, bool)
    assert result.peak_reserved_bytes >= result.peak_memory_bytes > 0
    assert {"source", "absent"} & set(result.gpu_before) and result.gpu_after
