"""The claims scorecard: each headline claim of the seed papers, judged on this machine.

Claims are data (``dynbench/published/claims.csv``: the sentence, its source and the
printed numbers); the rules that turn measurements into a verdict are here, one function
per kind of claim, and :data:`VERDICT_RULES` states them in the report.

Verdicts: ``holds``, ``holds for MAdds, not for time``, ``does not hold``, three kinds of
``inconclusive`` (the evidence straddles the threshold, every run that would decide is
noisy, or the counters that reproduce the paper's MAdds disagree), and ``not measured``
(the why names the suite that would).

How evidence decides (:func:`settle`): every stored run of a ratio is a piece of evidence
(its 95% interval, or its value where it has none). A verdict is drawn when every piece
lies on the same side of the threshold; one that straddles it, or two runs on opposite
sides, leave the claim inconclusive, and the why says by how much. Noise never decides on
its own (:mod:`dynbench.report.quality`): a noisy run may confirm a side only together with
a quiet run on that side, and the why names the runs it used.

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
from dataclasses import dataclass, field

import pandas as pd

from dynbench.report.data import GPU_METRIC, ci95_bounds, field_dict
from dynbench.report.published_sizes import compare_published
from dynbench.report.quality import ratio_quality, throughput_quality
from dynbench.report.spatial import spatial_points
from dynbench.results.names import COUNTERS

NEGLIGIBLE = 0.10
RATIO_TOLERANCE = 0.05
FRACTION_TOLERANCE = 0.05

HOLDS = "holds"
MADDS_ONLY = "holds for MAdds, not for time"
FAILS = "does not hold"
NOISY = "inconclusive (noisy)"
STRADDLES = "inconclusive (straddles)"
COUNTERS_DISAGREE = "inconclusive (counters disagree)"
UNMEASURED = "not measured"
INCONCLUSIVE = (NOISY, STRADDLES, COUNTERS_DISAGREE)
# the order a tally lists them in
VERDICTS = (HOLDS, MADDS_ONLY, FAILS, *INCONCLUSIVE, UNMEASURED)

COUNTER_NAMES = {"conv_linear": "conv+FC"}
# the seed files' ids (published.csv's sources) as the papers' short names
SHORT_SOURCES = {
    "000": "DY-Conv repro.",
    "001": "DY-Conv repro.",
    "002": "DCD",
    "003": "ODConv",
    "004": "Spatial DynConv",
}

EVIDENCE_RULE = (
    "Every stored run of a ratio is evidence (its 95% interval, or its value where it has "
    "none). A verdict is drawn when every run lies on one side of the threshold; a run whose "
    "interval straddles it, or runs on opposite sides, leave the claim inconclusive "
    "(straddles), saying by how much. A noisy run may confirm a side only together with a "
    "quiet run on that side; when every run is noisy the claim is inconclusive (noisy). The "
    "why names the runs used."
)

VERDICT_RULES = [
    ("Evidence", EVIDENCE_RULE),
    (
        "Negligible extra cost (ODConv tables)",
        f"MAdds are judged by the counter that reproduces the paper's own MAdds table in the "
        f"reproduction matrix (the others are shown beside it; if several reproduce it equally "
        f"and disagree on the side of +{NEGLIGIBLE:.0%}, the claim is inconclusive (counters "
        f"disagree)). Holds when that MAdds overhead and every run's CPU latency overhead are "
        f"at most +{NEGLIGIBLE:.0%}; holds for MAdds, not for time when every run's latency "
        f"overhead is above it; does not hold when the MAdds overhead is above it.",
    ),
    (
        "Time overhead (DCD section 5.5)",
        f"holds when every run's latency ratio is at most the printed ratio plus "
        f"{RATIO_TOLERANCE:.0%}; does not hold when every run's is above that.",
    ),
    (
        "Compactness (DCD section 5.3)",
        f"holds when our parameter fraction is at most the printed one plus "
        f"{FRACTION_TOLERANCE:.0%} points.",
    ),
    (
        "Speed table (ODConv)",
        f"two halves, each judged on its own: the CPU half holds when every run's latency ratio "
        f"is at most the printed CPU slowdown plus {RATIO_TOLERANCE:.0%}; the GPU half holds "
        f"when every run's throughput ratio is at least the printed one minus "
        f"{RATIO_TOLERANCE:.0%}. Combined: does not hold if a half does not, holds if every "
        f"measured half holds, otherwise inconclusive.",
    ),
    (
        "Spatial speed-up (spatial DynConv)",
        f"holds when, at some measured mask density strictly between 0 and 1, the upper end of "
        f"a quiet sparse execution's latency-ratio interval to dense execution is at most the "
        f"printed ratio plus {RATIO_TOLERANCE:.0%}; does not hold when the lower end is above "
        f"that at every such density; otherwise the intervals straddle it.",
    ),
    (
        "Training time (DY-Conv reproduction)",
        f"holds when the printed ratio lies within every run's training-step interval widened "
        f"by {RATIO_TOLERANCE:.0%} on each side; does not hold when it lies outside every "
        f"run's on the same side.",
    ),
]

# the command that measures what a claim of each kind needs, for "not measured" verdicts
MEASURED_BY = {
    "cost": "dynbench run --suite latency-published",
    "time": "dynbench run --suite latency-published",
    "speed": "dynbench run --suite latency-published; dynbench run --suite throughput (CUDA)",
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
BENCHMARK = "torch.utils.benchmark"


def load_claims() -> pd.DataFrame:
    path = importlib.resources.files("dynbench.published").joinpath("claims.csv")
    with importlib.resources.as_file(path) as csv_path:
        claims = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    for column in ("printed_ratio", "printed_madds_ratio", "printed_gpu_ratio"):
        claims[column] = pd.to_numeric(claims[column].replace("", None))
    return claims


def short_title(claim) -> str:
    """A claim in a few words, e.g. 'CondConv (8×) on ResNet-18: negligible cost'."""
    sentence = str(claim.sentence)
    subject = sentence.split(":")[0].split(" runs at ")[0]
    if claim.kind == "cost":
        return f"{subject}: negligible cost"
    if claim.kind == "time":
        return f"{subject}: +{100 * (claim.printed_ratio - 1):.0f}% time"
    if claim.kind == "speed":
        return f"{subject}: speed table"
    if claim.kind == "compact":
        short = sentence.split(" (")[0].replace("DCD needs only", "DCD:")
        return short.replace(" parameters on", " params,")
    if claim.kind == "train":
        return f"DY-Conv ResNet-18 CIFAR-10: {claim.printed_ratio:.1f}× training time"
    return "Spatial DynConv: up to 2× faster"


def paper_of(claim) -> str:
    return SHORT_SOURCES.get(str(claim.source)[:3], str(claim.source))


def printed_text(claim) -> str:
    """The claim's own printed figures (never another claim's)."""
    if claim.kind == "cost":
        return f"MAdds {_pct(claim.printed_madds_ratio)}"
    if claim.kind == "speed":
        return f"CPU {claim.printed_ratio:.2f}×, GPU {claim.printed_gpu_ratio:.2f}×"
    if claim.kind == "compact":
        return f"{claim.printed_ratio:.0%} of params"
    if claim.kind == "time":
        return f"time {claim.printed_ratio:.2f}×, MAdds {_pct(claim.printed_madds_ratio)}"
    return f"{claim.printed_ratio:.2f}×"


@dataclass(frozen=True)
class Run:
    """One run's figure for a ratio: value, 95% interval (None: none), and why it is noisy
    (empty: quiet)."""

    run_id: str
    value: float
    low: float | None = None
    high: float | None = None
    reasons: tuple[str, ...] = ()

    @property
    def noisy(self) -> bool:
        return bool(self.reasons)

    @property
    def lo(self) -> float:
        return self.value if self.low is None else self.low

    @property
    def hi(self) -> float:
        return self.value if self.high is None else self.high

    def text(self) -> str:
        if self.low is None:
            return f"{self.value:.3f}×"
        return f"{self.value:.3f}× [{self.low:.3f}, {self.high:.3f}]"

    def tag(self) -> str:
        quality = "noisy: " + "; ".join(self.reasons) if self.noisy else "quiet"
        return f"run {self.run_id[:8]} {self.value:.3f} ({quality})"


@dataclass(frozen=True)
class Settled:
    """What the runs of one ratio say about one threshold: ``side`` (None: no verdict),
    ``noisy`` (no verdict because every deciding run is noisy) and the sentence."""

    side: str | None
    noisy: bool
    text: str


def settle(runs: tuple[Run, ...], place: Callable[[Run], str | None], what: str) -> Settled:
    """Whether every run lies on one side (``place``: the run's side, None when its interval
    straddles the threshold), and which runs say so. ``what`` names the threshold."""
    sides = [place(r) for r in runs]
    used = "; ".join(r.tag() for r in runs)
    if None in sides or len(set(sides)) > 1:
        lo, hi = min(r.lo for r in runs), max(r.hi for r in runs)
        split = [r.tag() for r, s in zip(runs, sides, strict=True) if s is None]
        where = f"{'; '.join(split)} straddles" if split else "runs lie on both sides of"
        return Settled(None, False, f"{where} {what}: the evidence spans {lo:.3f} to {hi:.3f}")
    quiet = [r for r in runs if not r.noisy]
    if not quiet:
        return Settled(None, True, f"every run {sides[0]} {what}, but none is quiet ({used})")
    count = "the one run" if len(runs) == 1 else f"all {len(runs)} runs"
    return Settled(sides[0], False, f"{count} {sides[0]} {what} ({used})")


def limit_place(limit: float) -> Callable[[Run], str | None]:
    def place(run: Run) -> str | None:
        if run.hi <= limit:
            return "at or below"
        return "above" if run.lo > limit else None

    return place


@dataclass
class Judgement:
    """A claim's verdict, why, the number that decided it, and each half of a two-part claim."""

    verdict: str
    why: str
    deciding: str = ""
    halves: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Measured:
    """What the store holds about one claim's model and its reference."""

    params: float | None
    params_ref: float | None
    madds: dict[str, float]  # counter -> model's MAdds
    madds_ref: dict[str, float]
    madds_judges: tuple[str, ...]  # the counters that reproduce the claim's paper table
    madds_table: str  # which table, and how well, in words
    weight_bytes: float | None
    weight_bytes_ref: float | None
    latency: tuple[Run, ...]  # every run, newest last
    train: tuple[Run, ...]
    gpu: tuple[Run, ...]
    spatial: pd.DataFrame  # the sparsity measure's points of the model (empty: none)

    @staticmethod
    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or not b else a / b

    def madds_ratio(self, counter: str) -> float | None:
        return self.ratio(self.madds.get(counter), self.madds_ref.get(counter))


def _newest_per_run(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if "measured_at" in rows:
        rows = rows.sort_values("measured_at", kind="stable")
    return rows.drop_duplicates(keys, keep="last")


class Lookup:
    """Every run of each ratio, the newest value of each size, and which counter
    reproduces each paper table's MAdds."""

    def __init__(self, frame: pd.DataFrame) -> None:
        if "run_id" not in frame:
            frame = frame.assign(run_id="run")
        self.frame = frame
        values = _newest_per_run(frame, ["model", "metric", "method"])
        self.rows = {(r.model, r.metric, r.method): r for r in values.itertuples(index=False)}
        self.spatial = spatial_points(frame)
        self.compared = compare_published(frame) if not frame.empty else pd.DataFrame()

    def value(self, model: str, metric: str, method: str) -> float | None:
        row = self.rows.get((model, metric, method))
        return None if row is None or pd.isna(row.value) else float(row.value)

    def timed_runs(self, model: str, ratio_metric: str, time_metric: str) -> tuple[Run, ...]:
        """Each run's ratio with its interval and its own quality (that run's time records
        of the model and its baseline)."""
        f = self.frame
        ratios = _newest_per_run(
            f[(f["model"] == model) & (f["metric"] == ratio_metric) & (f["method"] == BENCHMARK)],
            ["run_id"],
        )
        times = _newest_per_run(
            f[(f["metric"] == time_metric) & (f["method"] == BENCHMARK)], ["run_id", "model"]
        )
        by_run = {(r.run_id, r.model): r.detail for r in times.itertuples(index=False)}
        runs = []
        for r in ratios.itertuples(index=False):
            low, high = ci95_bounds(r.detail)
            baseline = str(field_dict(r.detail).get("baseline", ""))
            details = [by_run.get((r.run_id, m)) for m in (model, baseline)]
            known = [d for d in details if d is not None]
            quality = ratio_quality(r.value, r.detail, known, time_metric)
            runs.append(Run(str(r.run_id), float(r.value), low, high, quality.reasons))
        return tuple(runs)

    def gpu_runs(self, model: str, reference: str) -> tuple[Run, ...]:
        """Each run's throughput ratio to the reference, noisy where either model's timed
        blocks spread (a throughput has no interval)."""
        f = self.frame
        rows = f[(f["metric"] == GPU_METRIC) & f["model"].isin([model, reference])]
        rows = _newest_per_run(rows.dropna(subset=["value"]), ["run_id", "model"])
        runs = []
        for run_id, group in rows.groupby("run_id", sort=False):
            by = {r.model: r for r in group.itertuples(index=False)}
            if model not in by or reference not in by or not by[reference].value:
                continue
            value = float(by[model].value) / float(by[reference].value)
            quality = throughput_quality([by[model].detail, by[reference].detail])
            runs.append(Run(str(run_id), value, reasons=quality.reasons))
        return tuple(runs)

    def madds_judges(self, claim) -> tuple[tuple[str, ...], str]:
        """The counters that best reproduce the printed MAdds of the claim model's table in
        the claim's paper (conv+FC, the papers' convention, where none does)."""
        c = self.compared
        if c.empty:
            return ("conv_linear",), "no published table measured here; judged by conv+FC"
        own = c[(c["source"] == str(claim.source)[:3]) & (c["model"] == claim.model)]
        own = own[own["madds_pub"].astype(str).str.strip() != ""]
        if own.empty:
            return ("conv_linear",), "the claim's table is not measured here; judged by conv+FC"
        table = own["table"].iloc[0]
        rows = c[(c["source"] == str(claim.source)[:3]) & (c["table"] == table)]
        scores = {}
        for counter in COUNTERS:
            if f"{counter}_ok" not in rows:
                continue
            compared = rows[f"{counter}_Δ%"].notna()
            if compared.any():
                marks = rows.loc[compared, f"{counter}_ok"].astype(str)
                scores[counter] = (int(marks.isin(["✓", "≈"]).sum()), int(compared.sum()))
        best = max((s[0] for s in scores.values()), default=0)
        if best == 0:
            return ("conv_linear",), f"no counter reproduces '{table}'; judged by conv+FC"
        judges = tuple(k for k, s in scores.items() if s[0] == best)
        names = ", ".join(COUNTER_NAMES.get(k, k) for k in judges)
        verb = "reproduces" if len(judges) == 1 else "reproduce"
        return judges, f"{names} {verb} '{table}' ({best} of {scores[judges[0]][1]} rows)"

    def measured(self, claim) -> Measured:
        model, reference = claim.model, claim.reference
        judges, table = self.madds_judges(claim)
        return Measured(
            params=self.value(model, "params", "count"),
            params_ref=self.value(reference, "params", "count"),
            madds=_counters(self, model),
            madds_ref=_counters(self, reference),
            madds_judges=judges,
            madds_table=table,
            weight_bytes=self.value(model, "weight_bytes_per_image", "analytic"),
            weight_bytes_ref=self.value(reference, "weight_bytes_per_image", "analytic"),
            latency=self.timed_runs(model, "latency_ratio", "latency_ms"),
            train=self.timed_runs(model, "train_step_ratio", "train_step_ms_per_image"),
            gpu=self.gpu_runs(model, reference),
            spatial=self.spatial[self.spatial["model"] == model]
            if not self.spatial.empty
            else self.spatial,
        )


def _counters(lookup: Lookup, model: str) -> dict[str, float]:
    found = {c: lookup.value(model, "madds", c) for c in COUNTERS}
    return {c: v for c, v in found.items() if v is not None}


def _pct(ratio: float | None) -> str:
    return "" if ratio is None or pd.isna(ratio) else f"{100 * (ratio - 1):+.1f}%"


def _newest(runs: tuple[Run, ...]) -> str:
    if not runs:
        return ""
    more = f" ({len(runs)} runs: {min(r.value for r in runs):.3f}-{max(r.value for r in runs):.3f})"
    return runs[-1].text() + (more if len(runs) > 1 else "")


def _madds_side(claim, m: Measured) -> tuple[str | None, str, str]:
    """(side of +10% the judging counters put the overhead on, None: they disagree or none
    is stored; why; the deciding number)."""
    ratios = {c: m.madds_ratio(c) for c in COUNTERS if m.madds_ratio(c) is not None}
    judged = {c: ratios[c] for c in m.madds_judges if c in ratios}
    if not judged:
        return None, f"no MAdds stored: run {SUITE_HINT['sizes']}", ""
    sides = {c: "above" if r - 1 > NEGLIGIBLE else "within" for c, r in judged.items()}
    shown = ", ".join(f"{COUNTER_NAMES.get(c, c)} {_pct(r)}" for c, r in judged.items())
    others = {c: r for c, r in ratios.items() if c not in judged}
    beside = ", ".join(f"{COUNTER_NAMES.get(c, c)} {_pct(r)}" for c, r in others.items())
    text = f"MAdds {shown} (printed {_pct(claim.printed_madds_ratio)}; {m.madds_table})"
    if beside:
        text += f"; other counters: {beside}"
    other_sides = {"above" if r - 1 > NEGLIGIBLE else "within" for r in others.values()}
    if len(set(sides.values())) > 1:
        return None, f"{text}: the reproducing counters disagree on +{NEGLIGIBLE:.0%}", shown
    side = next(iter(sides.values()))
    if other_sides - {side}:
        text += f"; counters disagree on the side of +{NEGLIGIBLE:.0%}"
    return side, text, f"MAdds {shown}"


def judge_cost(claim, m: Measured) -> Judgement:
    """MAdds by the counter that reproduces the paper's own table; then every run's time."""
    side, size, deciding = _madds_side(claim, m)
    if side is None:
        return Judgement(COUNTERS_DISAGREE if deciding else UNMEASURED, size, deciding)
    if side == "above":
        return Judgement(FAILS, f"{size}: above +{NEGLIGIBLE:.0%}", deciding)
    if not m.latency:
        why = f"{size}; time not measured: run {SUITE_HINT['latency']}"
        return Judgement(UNMEASURED, why, deciding)
    limit = 1 + NEGLIGIBLE
    settled = settle(m.latency, limit_place(limit), f"{limit:.2f}× (+{NEGLIGIBLE:.0%})")
    why = f"{size}; latency {_newest(m.latency)}: {settled.text}"
    deciding = f"latency {_newest(m.latency)}"
    verdict = {"at or below": HOLDS, "above": MADDS_ONLY}.get(settled.side or "")
    return Judgement(verdict or (NOISY if settled.noisy else STRADDLES), why, deciding)


def _ratio_half(runs: tuple[Run, ...], printed: float, what: str) -> Judgement | None:
    """None when not measured; else whether our ratio is not above the printed one."""
    if not runs:
        return None
    limit = printed * (1 + RATIO_TOLERANCE)
    settled = settle(runs, limit_place(limit), f"printed {printed:.2f}× + 5% = {limit:.3f}×")
    verdict = {"at or below": HOLDS, "above": FAILS}.get(settled.side or "")
    verdict = verdict or (NOISY if settled.noisy else STRADDLES)
    return Judgement(verdict, f"{what} {_newest(runs)}: {settled.text}", f"{what} {_newest(runs)}")


def judge_time(claim, m: Measured) -> Judgement:
    result = _ratio_half(m.latency, claim.printed_ratio, "latency")
    if result is None:
        return Judgement(UNMEASURED, f"run {SUITE_HINT['latency']}")
    madds = m.madds_ratio("analytic")
    if madds is not None:
        result.why += f"; analytic MAdds {_pct(madds)} here"
    return result


def judge_compact(claim, m: Measured) -> Judgement:
    fraction = m.ratio(m.params, m.params_ref)
    if fraction is None:
        return Judgement(UNMEASURED, f"run {SUITE_HINT['sizes']}")
    text = f"{fraction:.0%} of the parameters here (printed {claim.printed_ratio:.0%})"
    verdict = HOLDS if fraction <= claim.printed_ratio + FRACTION_TOLERANCE else FAILS
    return Judgement(verdict, text, f"params {fraction:.0%}")


def _gpu_half(runs: tuple[Run, ...], printed: float) -> Judgement | None:
    if not runs:
        return None
    limit = printed * (1 - RATIO_TOLERANCE)

    def place(run: Run) -> str | None:
        return "at or above" if run.value >= limit else "below"

    settled = settle(runs, place, f"printed {printed:.2f}× - 5% = {limit:.3f}×")
    verdict = {"at or above": HOLDS, "below": FAILS}.get(settled.side or "")
    verdict = verdict or (NOISY if settled.noisy else STRADDLES)
    what = f"GPU throughput {_newest(runs)}"
    return Judgement(verdict, f"{what}: {settled.text}", what)


def combined(halves: list[Judgement]) -> str:
    """Does not hold if a half does not; holds if every half holds; else the first
    inconclusive half's verdict."""
    verdicts = [h.verdict for h in halves]
    if FAILS in verdicts:
        return FAILS
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return next(v for v in verdicts if v in INCONCLUSIVE)


def judge_speed(claim, m: Measured) -> Judgement:
    cpu = _ratio_half(m.latency, claim.printed_ratio, "CPU latency")
    gpu = _gpu_half(m.gpu, claim.printed_gpu_ratio)
    halves = {k: h for k, h in (("CPU", cpu), ("GPU", gpu)) if h is not None}
    if not halves:
        return Judgement(UNMEASURED, f"run {SUITE_HINT['latency']}; GPU: --suite throughput")
    why = "; ".join(f"{k}: {h.why}" for k, h in halves.items())
    if gpu is None:
        why += "; GPU not measured (throughput suite, needs CUDA)"
    if cpu is None:
        why += f"; CPU not measured ({SUITE_HINT['latency']})"
    deciding = "; ".join(h.deciding for h in halves.values())
    shown = {"CPU": UNMEASURED, "GPU": UNMEASURED} | {k: h.verdict for k, h in halves.items()}
    return Judgement(combined(list(halves.values())), why, deciding, shown)


def judge_train(claim, m: Measured) -> Judgement:
    if not m.train:
        return Judgement(UNMEASURED, f"run {SUITE_HINT['train']}")
    printed = claim.printed_ratio

    def place(run: Run) -> str | None:
        if run.hi * (1 + RATIO_TOLERANCE) < printed:
            return "below"
        return "above" if run.lo * (1 - RATIO_TOLERANCE) > printed else "around"

    settled = settle(m.train, place, f"the printed {printed:.1f}× (±5%)")
    ours = f"training step {_newest(m.train)}"
    why = f"{ours}: {settled.text}"
    if settled.side in ("below", "above"):
        return Judgement(FAILS, f"{why} (CPU step at the suite's batch, not a whole GPU run)", ours)
    if settled.side == "around":
        return Judgement(HOLDS, why, ours)
    return Judgement(NOISY if settled.noisy else STRADDLES, why, ours)


def judge_spatial(claim, m: Measured) -> Judgement:
    """Holds when, at some measured density strictly between 0 and 1, sparse execution is at
    least as fast as the printed speed-up says (its ratio to dense within the printed one
    plus 5%); fails when every such density's interval lies above that; density 0 computes
    no position at all and proves nothing."""
    sparse = m.spatial[m.spatial["execution"] == "sparse"] if not m.spatial.empty else m.spatial
    # a speed-up needs some positions computed and some skipped: 0 < density < 1
    if not sparse.empty:
        sparse = sparse[(sparse["density"] > 0) & (sparse["density"] < 1)]
    if sparse.empty:
        return Judgement(UNMEASURED, f"needs {SUITE_HINT['spatial']}")
    quiet = sparse[~sparse["noisy"]]
    if quiet.empty:
        return Judgement(NOISY, f"every sparse timing is noisy: {sparse['quality'].iloc[0]}")
    best = quiet.loc[quiet["high"].astype(float).idxmin()]
    text = (
        f"sparse {best['ratio']:.3f}× [{best['low']:.3f}, {best['high']:.3f}] of dense at "
        f"density {best['density']:g} ({best['mask']} masks) vs printed {claim.printed_ratio:.2f}×"
    )
    deciding = f"sparse {best['ratio']:.3f}× [{best['low']:.3f}, {best['high']:.3f}]"
    limit = claim.printed_ratio * (1 + RATIO_TOLERANCE)
    if best["high"] <= limit:
        return Judgement(HOLDS, text, deciding)
    if (quiet["low"].astype(float) > limit).all():
        return Judgement(FAILS, text, deciding)
    by = best["high"] - limit
    why = f"{text}: its interval straddles the printed ratio + 5% ({limit:.3f}×) by {by:.3f}"
    return Judgement(STRADDLES, why, deciding)


JUDGES: dict[str, Callable[[object, Measured], Judgement]] = {
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
    rows = []
    for claim in load_claims().itertuples(index=False):
        m = lookup.measured(claim)
        judged = JUDGES[claim.kind](claim, m)
        madds = " / ".join(
            t for t in (_pct(m.madds_ratio("conv_linear")), _pct(m.madds_ratio("analytic"))) if t
        )
        gpu = m.gpu[-1].value if m.gpu else None
        rows.append(
            {
                "Claim": short_title(claim),
                "Paper": paper_of(claim),
                "Verdict": judged.verdict,
                "Deciding": judged.deciding,
                "Why": judged.why,
                "Printed": printed_text(claim),
                "Params ×": m.ratio(m.params, m.params_ref),
                "MAdds overhead (conv+FC / analytic)": madds,
                "Weight bytes ×": m.ratio(m.weight_bytes, m.weight_bytes_ref),
                "CPU latency × [95% CI]": m.latency[-1].text() if m.latency else "",
                "latency_value": m.latency[-1].value if m.latency else None,
                "GPU throughput ×": gpu,
                "CPU half": judged.halves.get("CPU", ""),
                "GPU half": judged.halves.get("GPU", ""),
                "Sentence": f"{claim.sentence} ({paper_of(claim)}, {claim.table})",
                "kind": claim.kind,
                "model": claim.model,
                "id": claim.id,
                "measured_by": MEASURED_BY[claim.kind] if judged.verdict == UNMEASURED else "",
            }
        )
    return pd.DataFrame(rows)


def tally(card: pd.DataFrame) -> str:
    """'9 holds, 12 holds for MAdds, not for time, ...' in the order of :data:`VERDICTS`."""
    counts = card["Verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
