"""Two implementations' timings compared on constructed rounds: ratios, the overhead
quotient and its verdict, layer pairs summed, throughput and memory."""

import pytest

from dynbench.measure.gpu_rounds import GpuTimed
from dynbench.measure.side_by_side import compare_gpu, compare_overheads, sum_layer_pairs
from dynbench.measure.timing import Timed


def _timed(name, times, calls=0, faults=0):
    return Timed(name, list(times), calls=calls, minor_faults=faults)


STATIC = _timed("static", [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97] * 2)


def _scaled(name, ratio, wobble=0.005, **kw):
    return _timed(
        name, [s * (ratio + wobble * (i % 3 - 1)) for i, s in enumerate(STATIC.times)], **kw
    )


def test_a_quarter_of_the_released_overhead_is_a_yes():
    ours = _scaled("ours", 1.05, calls=32, faults=64)
    released = _scaled("released", 1.20, calls=16, faults=0)
    c = compare_overheads(ours, released, STATIC)
    assert c.ours_ratio[0] == pytest.approx(1.05) and c.released_ratio[0] == pytest.approx(1.2)
    assert c.ours_ratio[1] <= 1.05 <= c.ours_ratio[2]
    assert c.quotient == pytest.approx(0.25)
    low, high = c.quotient_interval
    assert low <= 0.25 <= high < 0.9 and c.verdict == "yes"
    assert c.ours.faults == 2.0 and c.released.faults == 0.0
    assert c.ours.median_s == ours.median and c.ours.spread == ours.iqr / ours.median


def test_equal_overheads_are_a_no_and_an_interval_across_the_target_is_unsettled():
    same = compare_overheads(_scaled("a", 1.2), _scaled("b", 1.2), STATIC)
    assert same.quotient == pytest.approx(1.0) and same.verdict == "no"
    # per-round ratios spread widely: the quotient's interval reaches both sides of 0.9
    wide = _timed("w", [s * r for s, r in zip(STATIC.times, [1.05, 1.35] * 8, strict=True)])
    unsettled = compare_overheads(wide, _scaled("b", 1.2), STATIC)
    low, high = unsettled.quotient_interval
    assert low <= 0.9 < high and unsettled.verdict == "unsettled"


def test_a_released_side_without_overhead_gives_an_infinite_quotient():
    c = compare_overheads(_scaled("ours", 1.1), _scaled("released", 0.95), STATIC)
    assert c.quotient == float("inf") and c.verdict == "no"


def test_layer_pairs_are_summed_and_their_ratios_taken_per_layer():
    pairs = [
        (_timed("o1", [1.0, 1.0, 1.0, 1.0]), _timed("r1", [2.0, 2.0, 2.0, 2.0])),
        (_timed("o2", [3.0, 3.0, 3.0, 3.0]), _timed("r2", [3.0, 3.0, 3.0, 3.0])),
        (_timed("o3", [1.0, 2.0, 3.0, 4.0]), _timed("r3", [1.0, 1.0, 1.0, 1.0])),
    ]
    s = sum_layer_pairs(pairs)
    assert s.layers == 3 and s.ours_s == 1.0 + 3.0 + 2.5 and s.released_s == 6.0
    assert s.difference_s == pytest.approx(0.5 / 3)
    assert s.median_ratio == 1.0  # per layer 0.5, 1.0, 2.5
    assert s.largest_spread == pytest.approx(1.0)  # o3: quantiles 1.25, 3.75 over 2.5
    assert s.median_spread == 0.0


def test_a_faster_lighter_steady_side_is_a_yes_else_no_and_unsteady_is_said():
    static = GpuTimed([100.0, 100.0, 101.0])
    ours = GpuTimed([200.0, 201.0, 200.0], peak=3 * 2**30)
    released = GpuTimed([250.0, 250.0, 250.0], peak=4 * 2**30)
    c = compare_gpu(ours, released, static, 2000)
    assert c.ours_images_s == 10_000 and c.released_images_s == 8_000
    assert (c.released_ratio, c.ours_ratio, c.faster) == (0.4, 0.5, 1.25)
    assert (c.released_gib, c.ours_gib, c.verdict) == (4.0, 3.0, "yes")
    heavier = GpuTimed([200.0] * 3, peak=5 * 2**30)
    assert compare_gpu(heavier, released, static, 2000).verdict == "no"
    no_memory = compare_gpu(GpuTimed([200.0] * 3), GpuTimed([250.0] * 3), static, 2000)
    assert no_memory.ours_gib is None and no_memory.verdict == "yes"  # off CUDA: speed only
    unsteady = compare_gpu(ours, released, GpuTimed([100.0, 110.0, 100.0]), 2000)
    assert unsteady.verdict == "yes (spread > 2%)"
