"""Published versus measured: params and MAdds of every published row with a model.

A figure is *reproduced* when the measurement, rounded half-up to the printed
precision, equals the printed figure ("✓"); "≈" means one unit off in the last
printed digit (rounding conventions of papers differ); "✗" anything else. For
MAdds each counter is compared (its own mark in ``<counter>_ok``), and the status
names the counters with the best mark. The DCD paper's ResNet-50 params leave the
classifier out (23.5M), so on the DCD paper's ResNet rows a figure matched only without
the classifier says so. A row
whose ``params_metric`` names another params metric (the ODConv paper's backbone-only
figures: ``params_no_classifier``) is compared with that metric alone.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from dynbench.published import load_published
from dynbench.report.data import latest
from dynbench.results.names import COUNTERS, SIZE_METRICS


def _missing(*values: float | None) -> bool:
    return any(v is None or pd.isna(v) for v in values)


def match(measured: float | None, printed: float | None, step: float | None) -> str:
    if _missing(measured, printed, step):
        return ""
    q = Decimal(str(step))
    rounded = (Decimal(str(measured)) / q).quantize(Decimal(1), rounding=ROUND_HALF_UP) * q
    units_off = abs(rounded - Decimal(str(printed))) / q
    if units_off == 0:
        return "✓"
    return "≈" if units_off <= 1 else "✗"


def delta_pct(measured: float | None, printed: float | None) -> float | None:
    if _missing(measured, printed) or not printed:
        return None
    return round(100 * (measured - printed) / printed, 2)


LATEX_SYMBOLS = {"\\times": "×", "\\Lambda": "Λ", "\\Phi": "Φ", "\\alpha": "α", "\\uparrow": "↑"}


def clean_label(label: str) -> str:
    """'+ CondConv ( $8\\times$ )' -> '+ CondConv (8×)': the LaTeX of the transcription, undone."""
    text = label.replace("$", "")
    for latex, symbol in LATEX_SYMBOLS.items():
        text = text.replace(latex, symbol)
    text = text.replace("\\", "")
    return " ".join(text.replace("( ", "(").replace(" )", ")").split())


COMPACT_COLUMNS = [
    "source",
    "table",
    "row",
    "model",
    "params_pub",
    "params_Δ%",
    "params_ok",
    "madds_pub",
    *[f"{c}_Δ%" for c in COUNTERS],
    "madds_ok",
]


def compare_published(measurements: pd.DataFrame) -> pd.DataFrame:
    """One row per published row with a registry model that has measurements."""
    values = latest(measurements)
    lookup = {(r.model, r.metric, r.method): r.value for r in values.itertuples(index=False)}
    rows = []
    for pub in load_published().itertuples(index=False):
        if not pub.model or not any(
            k[0] == pub.model and k[1] in SIZE_METRICS for k in lookup
        ):  # a model only timed has nothing to set beside printed params and MAdds
            continue
        if _missing(pub.params_value) and _missing(pub.madds_value):
            continue
        params = lookup.get((pub.model, pub.params_metric or "params", "count"))
        no_fc = lookup.get((pub.model, "params_no_classifier", "count"))
        status = match(params, pub.params_value, pub.params_step)
        if pub.source.startswith("002") and pub.model.startswith("resnet") and status == "✗":
            # the DCD paper's ResNet params leave out the classifier
            without_fc = match(no_fc, pub.params_value, pub.params_step)
            if without_fc in ("✓", "≈"):
                status = f"{without_fc} (no fc)"
        row = {
            "source": pub.source[:3],
            "table": pub.table,
            "row": clean_label(pub.row_label),
            "model": pub.model,
            "params_pub": pub.params,
            "params": params,
            "params_Δ%": delta_pct(params, pub.params_value),
            "params_ok": status,
            "madds_pub": pub.madds,
        }
        verdicts: dict[str, list[str]] = {"✓": [], "≈": []}
        for counter in COUNTERS:
            value = lookup.get((pub.model, "madds", counter))
            row[f"madds_{counter}"] = value
            row[f"{counter}_Δ%"] = delta_pct(value, pub.madds_value)
            verdict = match(value, pub.madds_value, pub.madds_step)
            row[f"{counter}_ok"] = verdict
            if verdict in verdicts:
                verdicts[verdict].append(counter)
        best = "✓" if verdicts["✓"] else "≈" if verdicts["≈"] else None
        if best:
            row["madds_ok"] = f"{best} " + ", ".join(verdicts[best])
        else:
            row["madds_ok"] = "" if _missing(pub.madds_value) else "✗"
        row["note"] = pub.note
        rows.append(row)
    return pd.DataFrame(rows)


# The printed efficiency columns of published.csv, and the suites that compare the ones
# that are not sizes.
EFFICIENCY_COLUMNS = ("params", "madds", "gpu_img_s", "cpu_img_s", "cpu_ms", "train_time")
TIMED_ELSEWHERE = (
    "speed or time only: compared by the latency-published, throughput and train-step suites"
)


def uncompared_published(compared: pd.DataFrame) -> pd.DataFrame:
    """Every efficiency row the size comparison leaves out, and why: no model (its note
    says why none is built), a model not measured here, or figures that are not sizes."""
    done = set()
    if not compared.empty:
        done = set(
            zip(
                compared["source"],
                compared["table"],
                compared["row"],
                compared["model"],
                strict=True,
            )
        )
    rows = []
    for pub in load_published().itertuples(index=False):
        printed = {c: getattr(pub, c) for c in EFFICIENCY_COLUMNS if getattr(pub, c)}
        row = clean_label(pub.row_label)
        if not printed or (pub.source[:3], pub.table, row, pub.model) in done:
            continue
        if not pub.model:
            why = f"no model: {pub.note}"
        elif _missing(pub.params_value) and _missing(pub.madds_value):
            why = TIMED_ELSEWHERE
        else:
            why = "model not measured in this run"
        rows.append(
            {
                "source": pub.source[:3],
                "table": pub.table,
                "row": row,
                "printed": ", ".join(f"{c} {v}" for c, v in printed.items()),
                "why": why,
            }
        )
    return pd.DataFrame(rows)
