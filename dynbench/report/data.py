"""Shape stored measurements into the tables a report shows."""

from __future__ import annotations

import json

import pandas as pd

from dynbench.models.registry import _REGISTRY

MADDS_METHODS = ("conv_linear", "fvcore", "ptflops", "torch", "analytic")


def latest(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest value of each (model, metric, method) across runs."""
    if frame.empty:
        return frame
    return frame.sort_values("measured_at").drop_duplicates(
        ["model", "metric", "method"], keep="last"
    )


def family_of(model: str) -> tuple[str, str]:
    info = _REGISTRY.get(model)
    return (info.family, info.operator) if info else (model, "user")


def size_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Params and MAdds per model with ratios to the family's baseline."""
    frame = latest(frame)
    keep = frame[frame["metric"].isin(["params", "params_no_classifier", "madds"])]
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
    ordered += [f"madds_{m}" for m in MADDS_METHODS if f"madds_{m}" in wide]
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
        info = json.loads(detail) if isinstance(detail, str) else (detail or {})
        if info.get("disagree"):
            return f"{100 * info['spread']:.1f}%"
    return ""
