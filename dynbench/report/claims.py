"""The claims scorecard: each headline claim of the seed papers, judged on this machine.

Claims are data (``dynbench/published/claims.csv``: the sentence, its source and the
printed numbers); the rules that turn measurements into a verdict are here, one function
per kind of claim, and :data:`VERDICT_RULES` states them in the report.

Verdicts: ``holds``, ``holds for MAdds, not for time``, ``does not hold``,
``inconclusive (noisy)`` (a timing exists but may not decide, see
:mod:`dynbench.report.quality`), ``not measured`` (the why names the suite that would).

Why these thresholds:

* "negligible extra cost" is judged at ``NEGLIGIBLE`` = +10%: the papers call +1% to +6%
  MAdds negligible, and 10% leaves room for rounding and counting conventions while still
  meaning "hardly more"; the same bound then applies to time, which is what a user pays;
* a printed time or speed ratio "holds" when our interval does not lie beyond it by more
  than ``RATIO_TOLERANCE`` (5%): other hardware, and the papers print 2-3 digits;
* a compactness claim ("only X% of the parameters") holds when our fraction is at most
  X plus ``FRACTION_TOLERANCE`` (5 points): parameter counts are exact, the papers round.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from dynbench.report.data import (
    GPU_METRIC,
    ci95_bounds,
    field_dict,
    latest,
    per_run_ratios,
    ratio_runs,
)
from dynbench.report.quality import Quality, ratio_quality, throughput_quality
from dynbench.report.spatial import spatial_points

NEGLIGIBLE = 0.10
RATIO_TOLERANCE = 0.05
FRACTION_TOLERANCE = 0.05

HOLDS = "holds"
MADDS_ONLY = "holds for MAdds, not for time"
FAILS = "does not hold"
NOISY = "inconclusive (noisy)"
UNMEASURED = "not measured"

VERDICT_RULES = [
    (
        "Negligible extra cost (ODConv tables)",
        f"holds when the analytic MAdds overhead (kernel aggregation included, as in the papers' "
        f"figures) and the CPU latency overhead (upper end of its "
        f"95% interval) are both at most +{NEGLIGIBLE:.0%}; holds for MAdds, not for time when "
        f"the MAdds overhead is and the latency overhead's lower end is above it; does not hold "
        f"when the MAdds overhead is above it.",
    ),
    (
        "Time overhead (DCD section 5.5)",
        f"holds when our latency ratio's interval does not exceed the printed ratio by more "
        f"than {RATIO_TOLERANCE:.0%}; does not hold when its lower end does.",
    ),
    (
        "Compactness (DCD section 5.3)",
        f"holds when our parameter fraction is at most the printed one plus "
        f"{FRACTION_TOLERANCE:.0%} points.",
    ),
    (
        "Speed table (ODConv)",
        f"the printed CPU slowdown holds when our latency ratio's interval does not exceed it by "
        f"more than {RATIO_TOLERANCE:.0%}; the printed GPU throughput ratio holds when ours is "
        f"not below it by more than {RATIO_TOLERANCE:.0%}; each part that is measured must hold.",
    ),
    (
        "Spatial speed-up (spatial DynConv)",
        f"holds when, at some measured mask density strictly between 0 and 1, the upper end of "
        f"sparse execution's latency-ratio interval to dense execution is at most the printed "
        f"ratio plus {RATIO_TOLERANCE:.0%}; does not hold when the lower end is above that at "
        f"every such density; otherwise the intervals straddle it and give no verdict.",
    ),
    (
        "Training time (DY-Conv reproduction)",
        f"holds when the printed ratio lies within our training-step ratio's interval widened "
        f"by {RATIO_TOLERANCE:.0%} on each side.",
    ),
]

# the suite that measures what a claim of each kind needs, for "not measured" verdicts
MEASURED_BY = {
    "cost": "dynbench run --suite latency-published (ResNet-50, MobileNetV2 x1.0)",
    "time": "dynbench run --suite latency-published (MobileNetV2 x0.5, x1.0)",
    "speed": "dynbench run --suite latency-published; GPU: --suite throughput (CUDA)",
    "train": "dynbench run --suite train-step",
    "compact": "dynbench run --suite published",
    "spatial": "dynbench run --suite sparsity",
}
SUITE_HINT = {
    "latency": "latency (dynbench run --suite latency-published, or --models)",
    "train": "training step (dynbench run --suite train-step)",
    "sizes": "params and MAdds (dynbench run --suite published)",
    "spatial": "spatial DynConv's sparsity suite (dynbench run --suite sparsity)",
}


def load_claims() -> pd.DataFrame:
    path = importlib.resources.files("dynbench.published").joinpath("claims.csv")
    with importlib.resources.as_file(path) as csv_path:
        claims = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    for column in ("printed_ratio", "printed_madds_ratio", "printed_gpu_ratio"):
        claims[column] = pd.to_numeric(claims[column].replace("", None))
    return claims


@dataclass(frozen=True)
class Measured:
    """What the store holds about one claim's model and its reference."""

    params: float | None
    params_ref: float | None
    madds: float | None  # conv+FC
    madds_ref: float | None
    analytic: float | None
    analytic_ref: float | None
    weight_bytes: float | None
    weight_bytes_ref: float | None
    latency: tuple[float, float | None, float | None] | None  # ratio, CI low, CI high
    latency_quality: Quality | None
    train: tuple[float, float | None, float | None] | None
    train_quality: Quality | None
    gpu: float | None  # throughput ratio model / reference
    gpu_quality: Quality | None  # both throughputs' block spreads and the ratio's other runs
    spatial: pd.DataFrame  # the sparsity measure's points of the model (empty: none)

    def ratio(self, a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or not b else a / b


class Lookup:
    """The newest value of each (model, metric, method), and every run of each ratio."""

    def __init__(self, frame: pd.DataFrame) -> None:
        values = latest(frame)
        self.rows = {(r.model, r.metric, r.method): r for r in values.itertuples(index=False)}
        self.repeats = ratio_runs(frame)
        self.spatial = spatial_points(frame)
        self.frame = frame

    def value(self, model: str, metric: str, method: str) -> float | None:
        row = self.rows.get((model, metric, method))
        return None if row is None or pd.isna(row.value) else float(row.value)

    def timed_ratio(self, model: str, ratio_metric: str, time_metric: str):
        row = self.rows.get((model, ratio_metric, "torch.utils.benchmark"))
        if row is None:
            return None, None
        low, high = ci95_bounds(row.detail)
        baseline = self.rows.get((_baseline_of(row.detail), time_metric, "torch.utils.benchmark"))
        own = self.rows.get((model, time_metric, "torch.utils.benchmark"))
        details = [r.detail for r in (own, baseline) if r is not None]
        repeats = self.repeats.get((model, ratio_metric), [])
        quality = ratio_quality(row.value, row.detail, details, repeats)
        return (row.value, low, high), quality

    def measured(self, model: str, reference: str) -> Measured:
        latency, latency_quality = self.timed_ratio(model, "latency_ratio", "latency_ms")
        train, train_quality = self.timed_ratio(
            model, "train_step_ratio", "train_step_ms_per_image"
        )
        gpu = self.value(model, GPU_METRIC, "cuda_events")
        gpu_ref = self.value(reference, GPU_METRIC, "cuda_events")
        gpu_ratio = None if gpu is None or not gpu_ref else gpu / gpu_ref
        throughputs = (self.rows.get((n, GPU_METRIC, "cuda_events")) for n in (model, reference))
        details = [row.detail for row in throughputs if row is not None]
        return Measured(
            params=self.value(model, "params", "count"),
            params_ref=self.value(reference, "params", "count"),
            madds=self.value(model, "madds", "conv_linear"),
            madds_ref=self.value(reference, "madds", "conv_linear"),
            analytic=self.value(model, "madds", "analytic"),
            analytic_ref=self.value(reference, "madds", "analytic"),
            weight_bytes=self.value(model, "weight_bytes_per_image", "analytic"),
            weight_bytes_ref=self.value(reference, "weight_bytes_per_image", "analytic"),
            latency=latency,
            latency_quality=latency_quality,
            train=train,
            train_quality=train_quality,
            gpu=gpu_ratio,
            gpu_quality=None
            if gpu_ratio is None
            else throughput_quality(
                gpu_ratio, details, per_run_ratios(self.frame, model, reference, GPU_METRIC)
            ),
            spatial=self.spatial[self.spatial["model"] == model]
            if not self.spatial.empty
            else self.spatial,
        )


def _baseline_of(detail: object) -> str:
    return str(field_dict(detail).get("baseline", ""))


def _pct(ratio: float | None) -> str:
    return "" if ratio is None else f"{100 * (ratio - 1):+.1f}%"


def _interval(timed: tuple[float, float | None, float | None] | None) -> str:
    if timed is None:
        return ""
    value, low, high = timed
    text = f"{value:.3f}×"
    return text if low is None else f"{text} [{low:.3f}, {high:.3f}]"


def judge_cost(claim, m: Measured) -> tuple[str, str]:
    """MAdds are judged by the analytic count (everything the operator computes, its
    kernel aggregation included, as the papers' own figures do); conv+FC alone leaves out
    the aggregation and would call every kernel-mixing operator free."""
    madds = m.ratio(m.analytic, m.analytic_ref) or m.ratio(m.madds, m.madds_ref)
    if madds is None:
        return UNMEASURED, f"no MAdds stored: run {SUITE_HINT['sizes']}"
    size = f"analytic MAdds {_pct(madds)} (printed {_pct(claim.printed_madds_ratio)})"
    if madds - 1 > NEGLIGIBLE:
        return FAILS, f"{size}: above +{NEGLIGIBLE:.0%}"
    if m.latency is None:
        return UNMEASURED, f"{size}, negligible; time not measured: run {SUITE_HINT['latency']}"
    if m.latency_quality.noisy:
        return NOISY, f"{size}; latency {m.latency_quality.text()}"
    value, low, high = m.latency
    time = f"latency {_pct(value)} [{_pct(low)}, {_pct(high)}]"
    if high - 1 <= NEGLIGIBLE:
        return HOLDS, f"{size}, {time}: both within +{NEGLIGIBLE:.0%}"
    if low - 1 > NEGLIGIBLE:
        return MADDS_ONLY, f"{size} but {time}"
    return NOISY, f"{size}; {time} straddles +{NEGLIGIBLE:.0%}"


def _ratio_not_above(
    printed: float, timed, quality: Quality | None, what: str
) -> tuple[str, str] | None:
    """None when not measured; else a verdict that our ratio is not above the printed one."""
    if timed is None:
        return None
    if quality.noisy:
        return NOISY, f"{what} {quality.text()}"
    value, low, high = timed
    ours = f"{what} {_interval(timed)} vs printed {printed:.2f}×"
    if high <= printed * (1 + RATIO_TOLERANCE):
        return HOLDS, ours
    if low > printed * (1 + RATIO_TOLERANCE):
        return FAILS, f"{ours}: costlier here"
    return NOISY, f"{ours}: interval straddles the printed ratio"


def judge_time(claim, m: Measured) -> tuple[str, str]:
    result = _ratio_not_above(claim.printed_ratio, m.latency, m.latency_quality, "latency")
    if result is None:
        return UNMEASURED, f"run {SUITE_HINT['latency']}"
    madds = m.ratio(m.analytic, m.analytic_ref)
    extra = f"; analytic MAdds {_pct(madds)} here" if madds is not None else ""
    return result[0], result[1] + extra


def judge_compact(claim, m: Measured) -> tuple[str, str]:
    fraction = m.ratio(m.params, m.params_ref)
    if fraction is None:
        return UNMEASURED, f"run {SUITE_HINT['sizes']}"
    text = f"{fraction:.0%} of the parameters here (printed {claim.printed_ratio:.0%})"
    if fraction <= claim.printed_ratio + FRACTION_TOLERANCE:
        return HOLDS, text
    return FAILS, text


def judge_speed(claim, m: Measured) -> tuple[str, str]:
    parts = []
    cpu = _ratio_not_above(claim.printed_ratio, m.latency, m.latency_quality, "CPU latency")
    if cpu is not None:
        parts.append(cpu)
    if m.gpu is not None:
        printed = claim.printed_gpu_ratio
        text = f"GPU throughput {m.gpu:.2f}× vs printed {printed:.2f}×"
        if m.gpu_quality is not None and m.gpu_quality.noisy:
            text += f": {m.gpu_quality.text()}, too noisy for a verdict"
            parts.append((NOISY, text))
        else:
            parts.append((HOLDS if m.gpu >= printed * (1 - RATIO_TOLERANCE) else FAILS, text))
    if not parts:
        return UNMEASURED, f"run {SUITE_HINT['latency']}; GPU: dynbench run --suite throughput"
    verdicts = {verdict for verdict, _ in parts}
    why = "; ".join(text for _, text in parts)
    if m.gpu is None:
        why += "; GPU not measured (throughput suite, needs CUDA)"
    for verdict in (FAILS, NOISY):
        if verdict in verdicts:
            return verdict, why
    return HOLDS, why


def judge_train(claim, m: Measured) -> tuple[str, str]:
    if m.train is None:
        return UNMEASURED, f"run {SUITE_HINT['train']}"
    value, low, high = m.train
    ours = f"training step {_interval(m.train)} vs printed {claim.printed_ratio:.1f}×"
    if low is None or m.train_quality.noisy:
        return NOISY, f"{ours}; {m.train_quality.text()}"
    printed = claim.printed_ratio
    if low * (1 - RATIO_TOLERANCE) <= printed <= high * (1 + RATIO_TOLERANCE):
        return HOLDS, ours
    return FAILS, f"{ours} (CPU step at the suite's batch, not a whole GPU run)"


def judge_spatial(claim, m: Measured) -> tuple[str, str]:
    """Holds when, at some measured density strictly between 0 and 1, sparse execution is at
    least as fast as the printed speed-up says (its ratio to dense within the printed one
    plus 5%); fails when every such density's interval lies above that; density 0 computes
    no position at all and proves nothing."""
    sparse = m.spatial[m.spatial["execution"] == "sparse"] if not m.spatial.empty else m.spatial
    # a speed-up needs some positions computed and some skipped: 0 < density < 1
    if not sparse.empty:
        sparse = sparse[(sparse["density"] > 0) & (sparse["density"] < 1)]
    if sparse.empty:
        return UNMEASURED, f"needs {SUITE_HINT['spatial']}"
    quiet = sparse[~sparse["noisy"]]
    if quiet.empty:
        return NOISY, f"every sparse timing is noisy: {sparse['quality'].iloc[0]}"
    best = quiet.loc[quiet["high"].astype(float).idxmin()]
    text = (
        f"sparse {best['ratio']:.3f}× [{best['low']:.3f}, {best['high']:.3f}] of dense at "
        f"density {best['density']:g} ({best['mask']} masks) vs printed {claim.printed_ratio:.2f}×"
    )
    limit = claim.printed_ratio * (1 + RATIO_TOLERANCE)
    if best["high"] <= limit:
        return HOLDS, text
    if (quiet["low"].astype(float) > limit).all():
        return FAILS, text
    return NOISY, f"{text}: an interval straddles the printed ratio"


JUDGES: dict[str, Callable[[object, Measured], tuple[str, str]]] = {
    "cost": judge_cost,
    "time": judge_time,
    "compact": judge_compact,
    "speed": judge_speed,
    "train": judge_train,
    "spatial": judge_spatial,
}


def scorecard(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: what it says, what was measured here, the verdict and why."""
    lookup = Lookup(frame)
    speeds = load_claims()
    printed_speed = {
        r.model: r.printed_ratio for r in speeds[speeds["kind"] == "speed"].itertuples()
    }
    rows = []
    for claim in load_claims().itertuples(index=False):
        m = lookup.measured(claim.model, claim.reference)
        verdict, why = JUDGES[claim.kind](claim, m)
        madds = m.ratio(m.madds, m.madds_ref)
        analytic = m.ratio(m.analytic, m.analytic_ref)
        rows.append(
            {
                "Claim": f"{claim.sentence} ({claim.source}, {claim.table})",
                "Verdict": verdict,
                "Why": why,
                "Params ×": m.ratio(m.params, m.params_ref),
                "MAdds overhead (conv+FC / analytic)": " / ".join(
                    t for t in (_pct(madds), _pct(analytic)) if t
                ),
                "Weight bytes ×": m.ratio(m.weight_bytes, m.weight_bytes_ref),
                "CPU latency × [95% CI]": _interval(m.latency),
                "GPU throughput ×": m.gpu,
                "Printed CPU slowdown ×": printed_speed.get(claim.model),
                "kind": claim.kind,
                "model": claim.model,
                "measured_by": MEASURED_BY[claim.kind] if verdict == UNMEASURED else "",
            }
        )
    return pd.DataFrame(rows)
