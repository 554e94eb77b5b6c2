"""When may a timing become a verdict? The rules, in one place.

A ratio measured on a shared machine is a finding only if the machine was quiet enough
while it was taken and the measurement was precise enough to decide. A timing is
*noisy*, and no verdict is drawn from it, when any of these holds:

* its 95% interval is wider than ``MAX_CI_HALF_WIDTH`` of the ratio on either side, or
  it has none (fewer than 6 rounds): the data cannot separate "as printed" from not;
* the baseline's or the variant's rounds spread by more than ``MAX_IQR`` (IQR / median):
  the machine's speed moved while they were taken;
* at inference, either model page-faulted more than ``MAX_FAULTS_PER_CALL`` times per
  call: the time went to the kernel mapping fresh memory, not to the operator (this is
  what made the MobileNetV2 verdicts of an earlier report wrong). A training step
  allocates its gradients anew every step, so there faults are part of the cost and are
  only recorded.

A GPU throughput ratio has no interval (a throughput is the median of a few timed blocks);
it is noisy when either model's blocks spread by more than ``MAX_GPU_SPREAD`` ((slowest -
fastest) / median).

Each run is judged on its own. Two runs that differ are not noise by themselves: the
claims rules (:func:`dynbench.report.claims.settle`) draw a verdict when every run lies on
one side of a threshold and call it inconclusive when they straddle it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dynbench.report.data import detail
from dynbench.results.details import GpuDetail, RatioDetail, TimingDetail

MAX_CI_HALF_WIDTH = 0.03
MAX_IQR = 0.10
MAX_FAULTS_PER_CALL = 50.0
MAX_GPU_SPREAD = 0.10

RULES = (
    f"A timing is noisy (no verdict is drawn from it) when its 95% interval is wider than "
    f"±{MAX_CI_HALF_WIDTH:.0%} of the ratio or missing, when the baseline's or the variant's "
    f"rounds spread by more than {MAX_IQR:.0%} (IQR / median), when either model page-faults "
    f"more than {MAX_FAULTS_PER_CALL:g} times per inference call. A GPU throughput ratio is "
    f"noisy when either model's timed blocks spread by more than {MAX_GPU_SPREAD:.0%}. Each "
    f"run is judged on its own; how runs combine is the evidence rule above."
)


@dataclass(frozen=True)
class Quality:
    """Whether a timed ratio may become a verdict, and if not, why."""

    noisy: bool
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        return "; ".join(self.reasons) if self.noisy else "quiet"


TRAINING_METRICS = ("train_step_ms_per_image",)


def model_noise(timing: TimingDetail, metric: str = "") -> list[str]:
    """Why one model's timing record (of ``metric``) is noisy (empty: it is not)."""
    reasons = []
    iqr = timing.iqr_over_median
    if iqr is not None and iqr > MAX_IQR:
        reasons.append(f"IQR {iqr:.0%} of the median")
    faults = timing.minor_faults_per_call
    training = metric in TRAINING_METRICS  # a training step: faults are part of its cost
    if faults is not None and faults > MAX_FAULTS_PER_CALL and not training:
        reasons.append(f"{faults:,.0f} page faults per call")
    return reasons


def ratio_quality(
    value: float, ratio: RatioDetail, times: list[TimingDetail], metric: str = ""
) -> Quality:
    """The quality of one run's ratio: its interval and both models' times (records of
    ``metric``) in that run."""
    reasons = []
    low, high = ratio.ci95
    if low is None:
        reasons.append("no 95% interval (fewer than 6 rounds)")
    elif max(value - low, high - value) > MAX_CI_HALF_WIDTH * value:
        reasons.append(f"interval [{low:.3f}, {high:.3f}] wider than ±{MAX_CI_HALF_WIDTH:.0%}")
    for timing in times:
        reasons += model_noise(timing, metric)
    return Quality(bool(reasons), tuple(reasons))


def throughput_quality(details: list[GpuDetail]) -> Quality:
    """The quality of one run's GPU throughput ratio: the block spreads recorded in both
    models' ``details``."""
    spreads = [gpu.spread for gpu in details]
    reasons = [
        f"timed blocks spread {spread:.0%}"
        for spread in spreads
        if spread is not None and spread > MAX_GPU_SPREAD
    ]
    return Quality(bool(reasons), tuple(reasons))


def section_quality(times: pd.DataFrame) -> str:
    """One sentence for a timing section: was the machine quiet for these records?"""
    rows = list(times.itertuples(index=False))
    details = [detail(r, TimingDetail) for r in rows]
    noisy = {r.model: model_noise(d, r.metric) for r, d in zip(rows, details, strict=True)}
    noisy = {model: why for model, why in noisy.items() if why}
    loads = [v for d in details for v in (d.load_before, d.load_after) if v is not None]
    clocks = [v for d in details for v in (d.cpu_mhz_before, d.cpu_mhz_after) if v is not None]
    clocks = sorted(set(clocks))
    load = f"load average {min(loads):.2f}-{max(loads):.2f}" if loads else "load not recorded"
    clock = f"CPU clock {clocks[0]:g}-{clocks[-1]:g} MHz" if clocks else "CPU clock not readable"
    if not noisy:
        return (
            f"Quiet: no model's rounds spread by more than {MAX_IQR:.0%} (IQR / median) and, "
            f"at inference, none page-faults more than {MAX_FAULTS_PER_CALL:g} times per call; "
            f"{load}; {clock}."
        )
    listed = "; ".join(f"{model} ({', '.join(why)})" for model, why in sorted(noisy.items()))
    return f"Noisy: {listed}. No verdict is drawn from these. {load}; {clock}."
