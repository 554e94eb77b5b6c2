"""Published versus measured: params and MAdds of every published row with a model.

A figure is *reproduced* when the measurement, rounded to the printed precision, equals
the printed figure ("✓"); "≈" means one unit off in the last printed digit; "✗" anything
else. A ✓ within 0.1% of the figure from the edge of its rounding interval is marked
fragile. Params are compared under the convention of the row's table section (unit 10^6
or 2^20, classifier in or out, half-up or truncation: :mod:`dynbench.published.conventions`),
fixed by that section's baseline row and never by the row itself; a row that another
convention alone would reproduce stays as it is and says what it would have printed. For
MAdds each counter is compared (its own mark in ``<counter>_ok``), and the status names
the counters with the best mark.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from dynbench.published import load_published
from dynbench.published.conventions import (
    CANDIDATES,
    DEFAULT,
    Convention,
    MaddsConvention,
    Section,
    load_conventions,
    load_madds_conventions,
    part_values,
    reproduces,
    round_to,
)
from dynbench.report.data import detail, latest
from dynbench.results.details import CounterDetail
from dynbench.results.names import COUNTERS, SIZE_METRICS


def _missing(*values: float | None) -> bool:
    return any(v is None or pd.isna(v) for v in values)


def match(
    measured: float | None, printed: float | None, step: float | None, rounding: str = "half-up"
) -> str:
    if _missing(measured, printed, step):
        return ""
    q = Decimal(str(step))
    units_off = abs(round_to(measured, step, rounding) - Decimal(str(printed))) / q
    if units_off == 0:
        return "✓"
    return "≈" if units_off <= 1 else "✗"


FRAGILE_SHARE = 0.001  # a ✓ closer than 0.1% of the figure to its rounding edge
FRAGILE_STEP_SHARE = 0.1  # ... and closer than a tenth of the printed step


def fragile(measured: float, printed: float, step: float, rounding: str = "half-up") -> bool:
    """Whether a reproduced figure clears the nearer edge of its rounding interval (half-up:
    [printed - step/2, printed + step/2); truncation: [printed, printed + step)) by less
    than 0.1% of the figure and less than a tenth of the step. The second bound keeps the
    flag meaningful on four-digit figures (1.814G), whose whole half-step is under 0.1%."""
    low = printed - step / 2 if rounding == "half-up" else printed
    margin = min(measured - low, low + step - measured)
    return margin < min(FRAGILE_SHARE * printed, FRAGILE_STEP_SHARE * step)


def _verdict(measured: float | None, printed: float, step: float, rounding: str = "half-up") -> str:
    mark = match(measured, printed, step, rounding)
    if mark == "✓" and fragile(measured, printed, step, rounding):
        return "✓ fragile"
    return mark


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


def _section_checks(
    published: pd.DataFrame, sections: dict[tuple[str, str, str], Section], lookup: dict
) -> dict[tuple[str, str, str], str]:
    """{section key: why its declared convention is not applied}, for each section whose
    measured baseline row the declared convention does not reproduce."""
    failed = {}
    for key, section in sections.items():
        if section.convention is None:
            continue
        base = published[
            (published["source"].str[:3] == key[0])
            & (published["table"] == key[1])
            & (published["backbone"] == key[2])
            & (published["model"] == section.baseline_model)
        ]
        for pub in base.itertuples(index=False):
            counts = {m: lookup.get((pub.model, m, "count")) for m in PARAMS_METRICS}
            if _missing(counts[section.convention.metric], pub.params_value):
                continue  # the baseline is not measured here: the declaration stands
            if not reproduces(section.convention, counts, pub.params_value, pub.params_step):
                failed[key] = (
                    f"the declared {section.convention.label()} does not reproduce the "
                    f"measured baseline ({pub.model}), so {DEFAULT.label()} is used"
                )
    return failed


PARAMS_METRICS = ("params", "params_no_classifier")


def _madds_details(values: pd.DataFrame) -> dict[tuple[str, str], CounterDetail]:
    """{(model, counter): detail} of the MAdds records (the analytic breakdown, fvcore's
    extra ops) that the paper conventions are built from."""
    if "detail" not in values:
        return {}
    madds = values[values["metric"] == "madds"]
    return {
        (r.model, r.method): detail(r, CounterDetail)
        for r in madds.itertuples(index=False)
        if r.method in ("analytic", "fvcore")
    }


def _paper_madds(
    convention: MaddsConvention | None, details: dict[tuple[str, str], CounterDetail], pub
) -> dict[str, object]:
    """The row's MAdds under its paper's counting convention: value, Δ% and mark."""
    if convention is None or _missing(pub.madds_value):
        return {"paper_convention": "", "paper_madds": None, "paper_Δ%": None, "paper_ok": ""}
    values = part_values(details.get((pub.model, "analytic")), details.get((pub.model, "fvcore")))
    value = convention.total(values)
    return {
        "paper_convention": convention.name,
        "paper_madds": value,
        "paper_Δ%": delta_pct(value, pub.madds_value),
        "paper_ok": _verdict(value, pub.madds_value, pub.madds_step),
    }


def _other_convention(
    applied: Convention, counts: dict[str, float | None], printed: float, step: float
) -> str:
    """' (✓ as 13.73 in 2^20 units, ...)' when another convention alone reproduces the row."""
    for other in CANDIDATES:
        if other != applied and reproduces(other, counts, printed, step):
            figure = other.printed_scale(counts[other.metric]) / 1e6
            return f" (✓ under another convention: {figure:.3f}M in {other.label()})"
    return ""


def compare_published(
    measurements: pd.DataFrame,
    published: pd.DataFrame | None = None,
    conventions: dict[tuple[str, str, str], Section] | None = None,
) -> pd.DataFrame:
    """One row per published row with a registry model that has measurements.

    ``published`` and ``conventions`` default to the package's data (tests pass their own).
    """
    published = load_published() if published is None else published
    sections = load_conventions() if conventions is None else conventions
    values = latest(measurements)
    lookup = {(r.model, r.metric, r.method): r.value for r in values.itertuples(index=False)}
    details = _madds_details(values)
    papers = load_madds_conventions()
    failed = _section_checks(published, sections, lookup)
    rows = []
    for pub in published.itertuples(index=False):
        if not pub.model or not any(
            k[0] == pub.model and k[1] in SIZE_METRICS for k in lookup
        ):  # a model only timed has nothing to set beside printed params and MAdds
            continue
        if _missing(pub.params_value) and _missing(pub.madds_value):
            continue
        key = (pub.source[:3], pub.table, pub.backbone)
        section = sections.get(key)
        applied = DEFAULT if section is None or key in failed else section.applied
        if section is None:
            heading = f"{pub.backbone}: no convention declared ({DEFAULT.label()} used)"
        elif key in failed:
            heading = f"{pub.backbone}: {failed[key]}"
        else:
            heading = section.heading()
        counts = {m: lookup.get((pub.model, m, "count")) for m in PARAMS_METRICS}
        params = counts[applied.metric]
        scaled = None if params is None else applied.printed_scale(params)
        status = _verdict(scaled, pub.params_value, pub.params_step, applied.rounding)
        if status and not status.startswith("✓"):
            status += _other_convention(applied, counts, pub.params_value, pub.params_step)
        row = {
            "source": pub.source[:3],
            "table": pub.table,
            "row": clean_label(pub.row_label),
            "model": pub.model,
            "convention": heading,
            "params_pub": pub.params,
            "params": params,
            "params_as_printed": scaled,  # in the section's unit, x 10^6 (2^20 -> "M")
            "params_Δ%": delta_pct(scaled, pub.params_value),
            "params_ok": status,
            "madds_pub": pub.madds,
        }
        verdicts: dict[str, list[str]] = {"✓": [], "≈": []}
        for counter in COUNTERS:
            value = lookup.get((pub.model, "madds", counter))
            row[f"madds_{counter}"] = value
            row[f"{counter}_Δ%"] = delta_pct(value, pub.madds_value)
            verdict = _verdict(value, pub.madds_value, pub.madds_step)
            row[f"{counter}_ok"] = verdict
            mark = verdict[:1]
            if mark in verdicts:
                verdicts[mark].append(counter + (" (fragile)" if "fragile" in verdict else ""))
        best = "✓" if verdicts["✓"] else "≈" if verdicts["≈"] else None
        if best:
            row["madds_ok"] = f"{best} " + ", ".join(verdicts[best])
        else:
            row["madds_ok"] = "" if _missing(pub.madds_value) else "✗"
        row.update(_paper_madds(papers.get(key[0]), details, pub))
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
