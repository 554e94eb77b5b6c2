"""Shape stored measurements into the tables a report shows."""

from __future__ import annotations

import json
from typing import TypeVar

import pandas as pd

from dynbench.models.registry import find_model
from dynbench.results.details import CounterDetail, Detail, RatioDetail, TimingDetail, read_detail
from dynbench.results.names import COUNTERS, SIZE_METRICS, unit_of

D = TypeVar("D", bound=Detail)


def latest(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest value of each (model, metric, method) across runs; of records stored at the
    same instant, the one stored last (the store returns records in the order it took them)."""
    if frame.empty:
        return frame
    return frame.sort_values("measured_at", kind="stable").drop_duplicates(
        ["model", "metric", "method"], keep="last"
    )


def family_of(model: str) -> tuple[str, str]:
    info = find_model(model)
    return (info.family, info.operator) if info else (model, "user")


def size_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Params and MAdds per model with ratios to the family's baseline."""
    frame = latest(frame)
    keep = frame[frame["metric"].isin(SIZE_METRICS)]
    if keep.empty:
        return pd.DataFrame()
    column = keep["metric"].where(keep["metric"] != "madds", "madds_" + keep["method"])
    wide = keep.assign(column=column).pivot_table(
        index="model", columns="column", values="value", aggfunc="last"
    )
    wide = wide.reset_index()
    wide.insert(1, "family", [family_of(m)[0] for m in wide["model"]])
    wide.insert(2, "operator", [family_of(m)[1] for m in wide["model"]])
    ordered = ["model", "family", "operator", "params", "params_no_classifier"]
    ordered += [f"madds_{m}" for m in COUNTERS if f"madds_{m}" in wide]
    ordered += sorted(
        c for c in wide if c.startswith("madds_") and c not in ordered
    )  # counters added to the table
    wide = wide[[c for c in ordered if c in wide]]
    baseline = wide[wide["operator"] == "static"].set_index("family")
    for metric, ratio in (("params", "params_x"), ("madds_conv_linear", "madds_x")):
        if metric in wide and metric in baseline:
            base = wide["family"].map(baseline[metric])
            wide[ratio] = (wide[metric] / base).round(3)
    wide["counters_disagree"] = [_disagree(frame, m) for m in wide["model"]]
    return wide.sort_values(["family", "operator", "model"]).reset_index(drop=True)


def _disagree(frame: pd.DataFrame, model: str) -> str:
    rows = frame[(frame["model"] == model) & (frame["metric"] == "madds")]
    for row in rows.itertuples(index=False):
        counter = detail(row, CounterDetail)
        if counter.disagree:
            return f"{100 * counter.spread:.1f}%"
    return ""


def detail(row: object, kind: type[D]) -> D:
    """The typed detail of one stored record (a frame row, or a row of ``itertuples``): the
    report's one way to read a detail. The type comes from the record's metric
    (:data:`dynbench.results.details.DETAILS`); ``kind`` is the one the caller reads, and a
    record of another metric is refused rather than read as empty."""
    metric = row.metric  # type: ignore[attr-defined]
    typed = read_detail(metric, row.detail)  # type: ignore[attr-defined]
    if not isinstance(typed, kind):
        raise TypeError(
            f"a {metric} record's detail is {type(typed).__name__}, not {kind.__name__}"
        )
    return typed


def field_dict(value: object) -> dict:
    """A record's ``settings`` or ``environment``: JSON text as stored, a dict as measured."""
    if isinstance(value, str):
        return json.loads(value or "{}")
    return value if isinstance(value, dict) else {}


def with_settings(rows: pd.DataFrame, **defaults: object) -> pd.DataFrame:
    """``rows`` with a column for each named setting of each record (``defaults`` where a
    record's settings lack it): the keys a table groups the records by."""
    settings = rows["settings"].map(field_dict)
    return rows.assign(
        **{name: [s.get(name, default) for s in settings] for name, default in defaults.items()}
    )


def ci95_bounds(row: object) -> tuple[float | None, float | None]:
    """A ratio record's 95% interval, (None, None) where it has none."""
    return detail(row, RatioDetail).ci95


def ci95_text(low: float | None, high: float | None) -> str:
    return f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""


# (time metric, its ratio metric, section title, how it was measured)
TIMING_SECTIONS = [
    (
        "latency_ms",
        "latency_ratio",
        "CPU latency (batch 1, one thread)",
        "Median latency from torch.utils.benchmark; each family measured interleaved, one "
        "turn per model per round in a shuffled order; × baseline = median of the per-round "
        "latency ratios with a distribution-free 95% interval (order statistics); IQR = "
        "interquartile range of the rounds over their median; faults = minor page faults per "
        "call; load = 1-minute load average before -> after.",
    ),
    (
        "train_step_ms_per_image",
        "train_step_ratio",
        "Training step (forward + backward + SGD)",
        "ms per image of one SGD step at the suite's batch, families interleaved step by step; "
        "× baseline = median of the per-round ratios with a distribution-free 95% interval "
        "(none below 6 rounds).",
    ),
]


def timing_table(frame: pd.DataFrame, metric: str, ratio_metric: str) -> pd.DataFrame:
    """One row per model: its time, spread, page faults, ratio to the family baseline with
    a 95% CI, the load and the implementation that ran; numbers stay numbers."""
    frame = latest(frame)
    times = frame[frame["metric"] == metric]
    if times.empty:
        return pd.DataFrame()
    ratios = {r.model: r for r in frame[frame["metric"] == ratio_metric].itertuples(index=False)}
    rows = []
    for r in times.itertuples(index=False):
        timing = detail(r, TimingDetail)
        ratio = ratios.get(r.model)
        iqr = timing.iqr_over_median
        load = timing.load_before, timing.load_after
        rows.append(
            {
                "Model": r.model,
                "Family": family_of(r.model)[0],
                unit_of(metric): r.value,
                "IQR %": None if iqr is None else 100 * iqr,
                "Faults / call": timing.minor_faults_per_call,
                "× baseline": _ratio_value(r.model, ratio),
                "95% CI": (
                    _ratio_note(r.model) if ratio is None else ci95_text(*ci95_bounds(ratio))
                ),
                "Noisy": "yes" if timing.noisy else "",
                "Load": f"{load[0]:.2f} -> {load[1]:.2f}" if None not in load else "",
                "Implementation": field_dict(r.settings).get("impl", ""),
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values(["Family", "× baseline"]).reset_index(drop=True)


def _ratio_value(model: str, ratio: object) -> float | None:
    """A stored ratio; 1 for a family's baseline; none for a model without a baseline."""
    if ratio is not None:
        return ratio.value  # type: ignore[attr-defined]
    return 1.0 if family_of(model)[1] == "static" else None


def _ratio_note(model: str) -> str:
    """Why a model has no ratio: it is the baseline, or a user model timed in no family."""
    family, operator = family_of(model)
    if operator == "static":
        return ""
    if family == model:
        return "no ratio: a user model without a baseline (give --baseline)"
    return f"no ratio: its baseline {family} was not timed with it"


# the latency suite's options (dynbench.run.options) and the values the papers timed with:
# eager fp32, one thread, the default layout; the claims are judged on those records only
LATENCY_METRICS = ("latency_ms", "latency_ratio", "cpu_images_per_s")


def options_text(settings: object) -> str:
    """How a timing ran, e.g. ``eager fp32 1 thread`` or ``compiled (default) bf16
    channels-last 4 threads``; a record older than the options ran eager fp32 1 thread."""
    s = field_dict(settings)
    parts = [f"compiled ({s.get('compile_mode', 'default')})" if s.get("compile") else "eager"]
    parts.append(str(s.get("dtype", "fp32")))
    if s.get("channels_last"):
        parts.append("channels-last")
    threads = s.get("threads", 1)
    parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return " ".join(parts)


DEFAULT_OPTIONS = "eager fp32 1 thread"


def papers_setting(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the latency records taken with other options than the papers'."""
    if frame.empty:
        return frame
    other = frame["metric"].isin(LATENCY_METRICS) & (
        frame["settings"].map(options_text) != DEFAULT_OPTIONS
    )
    return frame[~other]


GPU_METRIC = "gpu_images_per_s"


def papers_gpu_setting(settings: object) -> bool:
    """Whether a GPU throughput ran as the papers timed theirs: eager, fp32 without
    autocast, default layout."""
    s = field_dict(settings)
    return (
        str(s.get("dtype", "fp32")) == "fp32"
        and str(s.get("amp", "none")) == "none"
        and not s.get("channels_last")
        and not s.get("compile")
    )


def at_own_input_size(model: str, settings: object) -> bool:
    """Whether a record was taken at its model's own input size (the papers' figures are):
    a run at ``--input-size 3,64,64`` times or counts a smaller problem, not the claim's."""
    size = field_dict(settings).get("input_size")
    info = find_model(model)
    return size is None or info is None or list(size) == list(info.input_size)


def judged_setting(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`papers_setting`, without the GPU throughputs taken in another dtype or layout
    or compiled, and without records taken at another input size than the model's own: the
    records a verdict on a paper's claim may use. Plots and tables still show the others."""
    papers = papers_setting(frame)
    if papers.empty:
        return papers
    other = (papers["metric"] == GPU_METRIC) & ~papers["settings"].map(papers_gpu_setting)
    own_size = [
        at_own_input_size(model, settings)
        for model, settings in zip(papers["model"], papers["settings"], strict=True)
    ]
    return papers[~other & pd.Series(own_size, index=papers.index)]


def latest_by_options(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest latency record of each (model, metric, options), with an ``options``
    column (see :func:`options_text`)."""
    rows = frame[frame["metric"].isin(LATENCY_METRICS)]
    if rows.empty:
        return rows.assign(options=[])
    rows = rows.assign(options=rows["settings"].map(options_text))
    return rows.sort_values("measured_at", kind="stable").drop_duplicates(
        ["model", "metric", "method", "options"], keep="last"
    )
