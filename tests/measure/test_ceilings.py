"""The machine's ceilings on tiny sizes: positive, finite, of a sane magnitude, and bounded
by what the wall clock saw around the whole measurement (a bound no load can break)."""

import math
import os
import time

from dynbench.measure.ceilings import Ceiling, gemm_rate, read_bandwidth
from dynbench.measure.environment import all_cores


def _watched(measure, *args, **kwargs) -> tuple[Ceiling, float]:
    """The ceiling and the wall-clock seconds the whole measurement took."""
    start = time.perf_counter()
    ceiling = measure(*args, **kwargs)
    return ceiling, time.perf_counter() - start


def _holds_the_wall_clock_bound(ceiling: Ceiling, elapsed: float, min_run_time: float) -> bool:
    """The timed blocks last at least ``min_run_time`` and fit inside ``elapsed``; at least
    half of the ``calls`` per-call times are at or above the median, so the median call is
    at most 2 * elapsed / calls and the rate at least work * calls / (2 * elapsed). Load
    slows the measurement and the wall clock alike, so this holds on any machine."""
    return (
        elapsed >= min_run_time
        and ceiling.median_s <= 2 * elapsed / ceiling.calls
        and ceiling.rate >= ceiling.work * ceiling.calls / (2 * elapsed)
    )


def test_read_bandwidth_of_a_small_array_is_a_plausible_rate():
    ceiling, elapsed = _watched(read_bandwidth, 1 << 20, threads=1, min_run_time=0.05)
    assert ceiling.work == 1 << 20 and ceiling.threads == 1 and ceiling.calls >= 1
    assert math.isfinite(ceiling.rate) and ceiling.median_s > 0
    # any CPU torch runs on reads 1 MiB at more than 100 MB/s and less than 10 TB/s
    assert 1e8 < ceiling.rate < 1e13
    assert ceiling.rate == ceiling.work / ceiling.median_s
    assert ceiling.iqr_s >= 0
    assert _holds_the_wall_clock_bound(ceiling, elapsed, 0.05)


def test_the_read_is_of_whole_fp32_values_and_at_least_one():
    assert read_bandwidth(1001, threads=1, min_run_time=0.0).work == 1000  # 250 floats
    assert read_bandwidth(3, threads=1, min_run_time=0.0).work == 4


def _best_of(attempts: int, measure, *args, **kwargs) -> Ceiling:
    """The fastest of up to ``attempts`` measurements, stopping at the first above 1e7 (each
    checked against the wall clock): load on a shared machine only ever slows a call down,
    so the best attempt is the closest to the machine's."""
    best = None
    for _ in range(attempts):
        ceiling, elapsed = _watched(measure, *args, **kwargs)
        assert _holds_the_wall_clock_bound(ceiling, elapsed, kwargs["min_run_time"])
        best = ceiling if best is None or ceiling.rate > best.rate else best
        if best.rate > 1e7:
            break
    return best


def test_gemm_rate_of_small_matrices_is_a_plausible_rate():
    """On every core, where a busy machine can make the rate anything low: the threads of a
    GEMM this small wait for each other at every step, and on cores other processes hold
    each wait can last a time slice (a 64 x 64 product measured 30 ms a call at load 5 on
    2 cores). So its lower bound is asserted only while the cores are not oversubscribed;
    on one thread, which waits for no other, always; the upper bound, which load cannot
    break, always."""
    ceiling = _best_of(3, gemm_rate, 64, threads=all_cores(), min_run_time=0.05)
    assert ceiling.work == 64**3 and ceiling.threads == all_cores()
    assert math.isfinite(ceiling.rate) and ceiling.rate < 1e14
    assert ceiling.rate == ceiling.work / ceiling.median_s
    # between 10 MMAdds/s and 100 TMAdds/s for any CPU not shared with more runnable work
    if os.getloadavg()[0] < all_cores():
        assert ceiling.rate > 1e7
    one = _best_of(3, gemm_rate, 64, threads=1, min_run_time=0.05)
    assert one.threads == 1 and 1e7 < one.rate < 1e14


def test_a_gemm_counts_size_cubed_multiply_adds_a_call():
    ceiling, elapsed = _watched(gemm_rate, 17, threads=1, min_run_time=0.02)
    assert ceiling.work == 17**3 and ceiling.threads == 1
    assert ceiling.rate == 17**3 / ceiling.median_s
    assert _holds_the_wall_clock_bound(ceiling, elapsed, 0.02)
