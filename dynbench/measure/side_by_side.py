"""Two implementations of one operator, timed interleaved beside one static model, compared:
the whole-model overhead quotient (CPU), layer pairs summed (CPU) and throughput and
memory (GPU). Frozen records; rendering them is the report's business."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from dynbench.measure.gpu_rounds import GpuTimed, per_round
from dynbench.measure.timing import Timed, overhead_quotient_interval, ratio_with_ci

Interval = tuple[float, float, float]  # median, low, high


@dataclass(frozen=True)
class Side:
    """One side's timing: median seconds a call, IQR / median, minor page faults a call."""

    median_s: float
    spread: float
    faults: float

    @classmethod
    def of(cls, timed: Timed) -> Side:
        return cls(timed.median, timed.iqr / timed.median, timed.faults_per_call[0])


@dataclass(frozen=True)
class OverheadComparison:
    """Each side's latency ratio to the static model (median of per-round ratios, 95%
    interval), the quotient overhead(ours) / overhead(released) (overhead = ratio - 1) with
    its 95% bootstrap interval, and the verdict against ``target``: ``yes`` when the whole
    interval is at or below it, ``no`` when the whole interval is above, else
    ``unsettled``."""

    ours_ratio: Interval
    released_ratio: Interval
    quotient: float
    quotient_interval: tuple[float, float]
    verdict: str
    ours: Side
    released: Side


def compare_overheads(
    ours: Timed, released: Timed, static: Timed, target: float = 0.9
) -> OverheadComparison:
    """The overhead comparison of two timings taken in the same rounds as ``static``; the
    quotient is infinite when the released side has no overhead."""
    ours_ratio, released_ratio = ratio_with_ci(ours, static), ratio_with_ci(released, static)
    r_ours, r_rel = ours_ratio[0], released_ratio[0]
    quotient = (r_ours - 1) / (r_rel - 1) if r_rel > 1 else float("inf")
    low, high = overhead_quotient_interval(ours, released, static)
    verdict = "yes" if high <= target else ("no" if low > target else "unsettled")
    return OverheadComparison(
        ours_ratio, released_ratio, quotient, (low, high), verdict, Side.of(ours), Side.of(released)
    )


@dataclass(frozen=True)
class LayerPairs:
    """Layers timed in pairs (ours, released), summed: how many, each side's medians
    summed, the mean difference a layer, the median over layers of each layer's median
    per-round ratio ours / released, and the median and largest IQR / median of all the
    timings, both sides."""

    layers: int
    ours_s: float
    released_s: float
    difference_s: float
    median_ratio: float
    median_spread: float
    largest_spread: float


def sum_layer_pairs(pairs: list[tuple[Timed, Timed]]) -> LayerPairs:
    """The summary of ``pairs`` of (ours, released) timings of the same layers' rounds."""
    ours = sum(o.median for o, _ in pairs)
    released = sum(r.median for _, r in pairs)
    ratio = statistics.median(
        statistics.median(a / b for a, b in zip(o.times, r.times, strict=True)) for o, r in pairs
    )
    spreads = [t.iqr / t.median for pair in pairs for t in pair]
    return LayerPairs(
        len(pairs),
        ours,
        released,
        (ours - released) / len(pairs),
        ratio,
        statistics.median(spreads),
        max(spreads),
    )


@dataclass(frozen=True)
class GpuComparison:
    """Images/s of each side (from its median block), each side's throughput relative to
    the static model's and ours' relative to released (medians of per-round block-time
    ratios, static / side and released / ours), each
    side's peak GiB (None off CUDA) and block spread, and whether all three models' blocks
    spread at most 2%. ``verdict``: ``yes`` when ours is at least as fast and, where
    measured, holds no more memory; `` (spread > 2%)`` appended when not steady."""

    ours_images_s: float
    released_images_s: float
    ours_ratio: float
    released_ratio: float
    faster: float
    ours_gib: float | None
    released_gib: float | None
    ours_spread: float
    released_spread: float
    verdict: str


def compare_gpu(ours: GpuTimed, released: GpuTimed, static: GpuTimed, images: int) -> GpuComparison:
    """The comparison of two models' blocks of ``images`` images each."""
    faster = per_round(ours, released)
    ours_gib, released_gib = (None if t.peak is None else t.peak / 2**30 for t in (ours, released))
    lighter = None if None in (ours_gib, released_gib) else ours_gib <= released_gib
    steady = all(t.spread <= 0.02 for t in (ours, released, static))
    verdict = "yes" if faster >= 1 and lighter is not False else "no"
    if not steady:
        verdict += " (spread > 2%)"
    return GpuComparison(
        images / ours.median * 1e3,
        images / released.median * 1e3,
        per_round(ours, static),
        per_round(released, static),
        faster,
        ours_gib,
        released_gib,
        ours.spread,
        released.spread,
        verdict,
    )
