"""Shape stored measurements into the tables a report shows."""

from __future__ import annotations

import json

import pandas as pd

from dynbench.models.registry import find_model
from dynbench.results.names import COUNTERS, SIZE_METRICS


def latest(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest value of each (model, metric, method) across runs."""
    if frame.empty:
        return frame
    return frame.sort_values("measured_at").drop_duplicates(
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
    for detail in rows["detail"]:
        info = detail_dict(detail)
        if info.get("disagree"):
            return f"{100 * info['spread']:.1f}%"
    return ""


def detail_dict(value: object) -> dict:
    if isinstance(value, str):
        return json.loads(value)
    return value if isinstance(value, dict) else {}


def ci95_bounds(detail: object) -> tuple[float | None, float | None]:
    """A ratio record's 95% interval from its detail, (None, None) where it has none."""
    info = detail_dict(detail)
    low, high = info.get("ci95_low"), info.get("ci95_high")
    return (low, high) if low is not None and high is not None else (None, None)


def ci95_text(low: float | None, high: float | None) -> str:
    return f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""


def timing_table(frame: pd.DataFrame, metric: str, ratio_metric: str) -> pd.DataFrame:
    """One row per model: its time, noise, and ratio to the family baseline with a 95% CI."""
    frame = latest(frame)
    times = frame[frame["metric"] == metric]
    if times.empty:
        return pd.DataFrame()
    ratios = {r.model: r for r in frame[frame["metric"] == ratio_metric].itertuples(index=False)}
    rows = []
    for r in times.itertuples(index=False):
        detail = detail_dict(r.detail)
        ratio = ratios.get(r.model)
        row = {"model": r.model, "family": family_of(r.model)[0], metric: round(r.value, 3)}
        if "iqr_over_median" in detail:
            row["iqr_%"] = round(100 * detail["iqr_over_median"], 1)
            row["noisy"] = "yes" if detail.get("noisy") else ""
        row["ratio"] = round(ratio.value, 3) if ratio is not None else 1.0
        row["ci95"] = ci95_text(*ci95_bounds(ratio.detail)) if ratio is not None else ""
        if "load_before" in detail:
            row["load"] = f"{detail['load_before']:.2f}->{detail['load_after']:.2f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["family", "ratio"]).reset_index(drop=True)
