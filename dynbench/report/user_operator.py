"""The user's operator beside the papers' operators, on the same backbones and machine.

A model built with ``--operator`` carries ``user_operator`` (its placement) in its records'
settings. For each backbone such a model was measured on, this section sets it beside the
static baseline and every model of a paper's operator (CondConv, DY-Conv, DCD, ODConv) that
the store holds for that backbone: params, MAdds by each counter, the weight bytes one image
reads, the CPU latency ratio with its 95% interval, the GPU throughput ratio when measured,
and where each sits on the MAdds-overhead against latency-overhead plot. Nothing was
claimed for the user's operator, so there is no verdict; a timing the noise rules
(:mod:`dynbench.report.quality`) call noisy is shown with its reasons and not placed.
"""

from __future__ import annotations

import pandas as pd

from dynbench.models.identity import USER_OPERATOR
from dynbench.models.registry import find_model
from dynbench.report.data import GPU_METRIC, ci95_text, detail, family_of, field_dict, latest
from dynbench.report.document import Block, Section, Table
from dynbench.report.quality import model_noise, ratio_quality, throughput_quality
from dynbench.results.details import CounterDetail, GpuDetail, RatioDetail, TimingDetail
from dynbench.results.names import COUNTERS

PAPERS_OPERATORS = ("condconv", "dyconv", "dcd", "odconv")
COUNTER_COLUMNS = {
    "fvcore": "MAdds fvcore",
    "ptflops": "MAdds ptflops",
    "torch": "MAdds torch",
    "conv_linear": "MAdds conv+FC",
    "analytic": "MAdds analytic",
}
NOTE = (
    "Your operator (built with --operator into the same layers the papers' operators replace) "
    "beside the static baseline and the papers' operators this store holds for the same "
    "backbone, measured on the same machine. Params in parameters; MAdds = multiply-adds at "
    "batch 1 by each counter; weight bytes = bytes of weights one image reads; CPU latency × "
    "= median per-round ratio to the baseline at batch 1, one thread, with its 95% interval; "
    "GPU × = images/s over the baseline's. Nothing was claimed for your operator, so there "
    "is no verdict; a noisy timing (the verdict rules' noise rules) is shown with its reasons "
    "and not placed on the plot."
)


def user_operator_models(frame: pd.DataFrame) -> list[str]:
    """The models of the store that carry a user's operator."""
    if frame.empty or "settings" not in frame:
        return []
    marked = frame["settings"].map(lambda s: USER_OPERATOR in field_dict(s))
    return sorted(set(frame.loc[marked, "model"]))


def comparison_table(frame: pd.DataFrame, family: str, mine: list[str]) -> pd.DataFrame:
    """One row per model of ``family``: the baseline, the papers' operators, the user's."""
    values = latest(frame)
    papers = sorted(
        m
        for m in set(values["model"])
        if m not in mine and family_of(m)[0] == family and family_of(m)[1] in PAPERS_OPERATORS
    )
    rows = [_row(values, model, family) for model in [family, *papers, *mine]]
    return pd.DataFrame([r for r in rows if r is not None])


def _value(values: pd.DataFrame, model: str, metric: str, method: str | None = None) -> object:
    rows = values[(values["model"] == model) & (values["metric"] == metric)]
    if method is not None:
        rows = rows[rows["method"] == method]
    return None if rows.empty else rows.iloc[-1]


def _row(values: pd.DataFrame, model: str, baseline: str) -> dict | None:
    if not (values["model"] == model).any():
        return None
    operator = family_of(model)[1]
    info = find_model(model)
    row: dict[str, object] = {
        "Model": model,
        "Operator": "yours" if info is not None and info.source else operator,
    }
    params = _value(values, model, "params")
    row["Params"] = None if params is None else params["value"]
    for counter in COUNTERS:
        record = _value(values, model, "madds", counter)
        error = None if record is None else detail(record, CounterDetail).error or ""
        if record is not None and _missing(record["value"]) and "unavailable" in (error or ""):
            row[COUNTER_COLUMNS[counter]] = "unavailable"
        else:
            row[COUNTER_COLUMNS[counter]] = None if record is None else record["value"]
    weights = _value(values, model, "weight_bytes_per_image")
    row["Weight bytes"] = None if weights is None else weights["value"]
    row.update(_latency(values, model, baseline))
    row.update(_gpu(values, model, baseline))
    row.update(_position(values, model, baseline, row))
    return row


def _latency(values: pd.DataFrame, model: str, baseline: str) -> dict:
    if model == baseline:
        measured = _value(values, model, "latency_ms") is not None
        return {"CPU latency ×": 1.0 if measured else None, "95% CI": "", "Timing": ""}
    ratio = _value(values, model, "latency_ratio")
    if ratio is None:
        return {"CPU latency ×": None, "95% CI": "", "Timing": "not timed"}
    # the interval, then each model's rounds, named
    ratio_detail = detail(ratio, RatioDetail)
    quality = ratio_quality(ratio["value"], ratio_detail, [])
    reasons = list(quality.reasons)
    for name in (model, baseline):
        time = _value(values, name, "latency_ms")
        noise = [] if time is None else model_noise(detail(time, TimingDetail))
        reasons += [f"{name}: {r}" for r in noise]
    low, high = ratio_detail.ci95
    return {
        "CPU latency ×": ratio["value"],
        "95% CI": ci95_text(low, high),
        "Timing": "; ".join(reasons) if reasons else "quiet",
    }


def _gpu(values: pd.DataFrame, model: str, baseline: str) -> dict:
    mine, base = (_value(values, m, GPU_METRIC) for m in (model, baseline))
    if not (_number(mine) and _number(base)):
        return {"GPU ×": None}
    ratio = _number(mine) / _number(base)
    quality = throughput_quality([detail(mine, GpuDetail), detail(base, GpuDetail)])
    return {"GPU ×": ratio, "GPU timing": quality.text()}


def _position(values: pd.DataFrame, model: str, baseline: str, row: dict) -> dict:
    """(MAdds overhead %, latency overhead %) on the plot's axes: analytic MAdds as the plot
    uses; conv+FC (said so) where the analytic count is unavailable."""
    if model == baseline:
        counted = _value(values, model, "madds") is not None
        return {
            "MAdds overhead %": 0.0 if counted else None,
            "Latency overhead %": 0.0 if row["CPU latency ×"] else None,
        }
    madds_overhead, basis = None, "analytic"
    for counter in ("analytic", "conv_linear"):
        mine, base = (_number(_value(values, m, "madds", counter)) for m in (model, baseline))
        if mine and base:
            madds_overhead, basis = 100 * (mine / base - 1), counter
            break
    latency = row.get("CPU latency ×")
    placed = latency is not None and row.get("Timing") == "quiet"
    return {
        "MAdds overhead %": madds_overhead,
        "MAdds basis": basis if madds_overhead is not None else "",
        "Latency overhead %": 100 * (latency - 1) if placed else None,
    }


def position_bullets(table: pd.DataFrame, mine: list[str]) -> list[str]:
    """Where each of the user's models sits among the papers' operators on the plot."""
    bullets = []
    others = table[~table["Model"].isin(mine) & (table["Operator"] != "static")]
    for model in mine:
        rows = table[table["Model"] == model]
        if rows.empty:
            continue
        row = rows.iloc[0]
        madds, latency = row["MAdds overhead %"], row["Latency overhead %"]
        if latency is None or pd.isna(latency):
            why = row["Timing"] or "no CPU latency ratio"
            bullets.append(f"{model}: not placed on the plot ({why}).")
            continue
        madds_text = (
            "MAdds overhead unknown"
            if madds is None or pd.isna(madds)
            else (f"MAdds {madds:+.1f}% ({row['MAdds basis']})")
        )
        placed = others.dropna(subset=["Latency overhead %"])
        slower = int((placed["Latency overhead %"] > latency).sum())
        faster = int((placed["Latency overhead %"] < latency).sum())
        bullets.append(
            f"{model}: {madds_text}, CPU latency {latency:+.1f}% {row['95% CI']}; of the "
            f"{len(placed)} papers' models placed on this backbone, {slower} cost more "
            f"latency over the baseline and {faster} less."
        )
    return bullets


def user_operator_section(frame: pd.DataFrame):
    """The report section, or None when the store holds no model with a user's operator."""
    mine_all = user_operator_models(frame)
    if not mine_all:
        return None
    blocks = [Block(text=NOTE)]
    for family in sorted({family_of(m)[0] for m in mine_all}):
        mine = [m for m in mine_all if family_of(m)[0] == family]
        table = comparison_table(frame, family, mine)
        if table.empty:
            continue
        shown = _formatted(table)
        for heading, columns, csv in (
            (f"{family}: sizes", SIZE_COLUMNS, f"user-operator-{family}.csv"),
            (f"{family}: speed and place on the plot", SPEED_COLUMNS, ""),
        ):
            part = shown[[c for c in columns if c in shown]]
            numeric = tuple(c for c in part.columns if c in NUMERIC)
            blocks.append(
                Block(
                    heading=heading,
                    table=Table(part, numeric, csv, table if csv else None),
                    bullets=[] if csv else position_bullets(table, mine),
                )
            )
    return Section("user-operator", "Your operator beside the papers' operators", blocks)


SIZE_COLUMNS = ("Model", "Operator", "Params", *COUNTER_COLUMNS.values(), "Weight bytes")
SPEED_COLUMNS = (
    "Model",
    "CPU latency ×",
    "95% CI",
    "Timing",
    "GPU ×",
    "GPU timing",
    "MAdds overhead %",
    "MAdds basis",
    "Latency overhead %",
)
NUMERIC = (
    "Params",
    *COUNTER_COLUMNS.values(),
    "Weight bytes",
    "CPU latency ×",
    "GPU ×",
    "MAdds overhead %",
    "Latency overhead %",
)


def _formatted(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    for column in ("Params", *COUNTER_COLUMNS.values(), "Weight bytes"):
        if column in shown:
            shown[column] = shown[column].map(_count)
    for column in ("CPU latency ×", "GPU ×"):
        if column in shown:
            shown[column] = shown[column].map(lambda v: "" if _missing(v) else f"{v:.3f}")
    for column in ("MAdds overhead %", "Latency overhead %"):
        if column in shown:
            shown[column] = shown[column].map(lambda v: "" if _missing(v) else f"{v:+.1f}")
    return shown


def _number(record: object) -> float | None:
    """A record's value, None where it has none (no record, or a failed measurement)."""
    if record is None or _missing(record["value"]):
        return None
    return float(record["value"])


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _count(value: object) -> str:
    if isinstance(value, str):
        return value
    return "" if _missing(value) else f"{int(value):,}"
