"""The evidence about one claim: every stored run of its ratios, the sizes, and which
counter reproduces the paper's MAdds table.

How evidence decides (:func:`settle`): every stored run of a ratio is a piece of evidence
(its 95% interval, or its value where it has none). A verdict is drawn when every piece
lies on the same side of the threshold; one that straddles it, or two runs on opposite
sides, leave the claim inconclusive, and the why says by how much. Noise never decides on
its own (:mod:`dynbench.report.quality`): a noisy run may confirm a side only together with
a quiet run on that side, and the why names the runs it used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from dynbench.report.data import GPU_METRIC, detail
from dynbench.report.mask_density import spatial_points
from dynbench.report.published_sizes import compare_published
from dynbench.report.quality import ratio_quality, throughput_quality
from dynbench.report.verdicts import (
    COUNTER_NAMES,
)
from dynbench.results.details import GpuDetail, RatioDetail, TimingDetail
from dynbench.results.names import COUNTERS

BENCHMARK = "torch.utils.benchmark"


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
        by_run = {
            (r.run_id, r.model): detail(r, TimingDetail) for r in times.itertuples(index=False)
        }
        runs = []
        for r in ratios.itertuples(index=False):
            ratio = detail(r, RatioDetail)
            low, high = ratio.ci95
            details = [by_run.get((r.run_id, m)) for m in (model, ratio.baseline)]
            known = [d for d in details if d is not None]
            quality = ratio_quality(r.value, ratio, known, time_metric)
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
            quality = throughput_quality([detail(by[m], GpuDetail) for m in (model, reference)])
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
