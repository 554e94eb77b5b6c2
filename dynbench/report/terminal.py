"""What the terminal shows: pandas DataFrames as rich tables, a run's summary, inspect."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dynbench.measure.breakdown import Inspection
from dynbench.report.answer import answer_lines
from dynbench.report.data import TIMING_SECTIONS, detail, timing_table
from dynbench.report.published_sizes import COMPACT_COLUMNS, compare_published, uncompared_published
from dynbench.results.details import CounterDetail


def format_value(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def rich_table(frame: pd.DataFrame, title: str | None = None, caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption, header_style="bold")
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(escape(str(column)), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(escape(format_value(v)) for v in row))
    return table


# a size table longer than this goes to the report (or --verbose) instead of the terminal
MAX_SIZE_ROWS = 12


def print_summary(out: Console, frame: pd.DataFrame, title: str, verbose: bool = True) -> None:
    """A run's records as terminal tables: timings with their ratios, then sizes (a long
    size table and the counters' notes only when ``verbose``)."""
    if frame.empty:
        return
    frame = frame.assign(measured_at=range(len(frame)))
    for metric, ratio, heading, _ in TIMING_SECTIONS:
        if metric in set(frame["metric"]):
            out.print(
                rich_table(
                    timing_table(frame, metric, ratio),
                    title=f"{title}: {heading}",
                    caption="ratio = variant / family baseline, 95% CI over rounds",
                )
            )
            frame = frame[~frame["metric"].isin([metric, ratio, "cpu_images_per_s"])]
    if frame.empty:
        return
    frame = frame[frame["metric"] != "error"]
    if frame.empty:
        return
    frame = frame.assign(column=frame["metric"] + " (" + frame["method"] + ")")
    wide = frame.pivot_table(
        index="model", columns="column", values="value", aggfunc="last", sort=False
    )
    wide = wide.reset_index()
    if len(wide) > MAX_SIZE_ROWS and not verbose:
        out.print(
            f"suite {title}: sizes of {len(wide)} models stored; 'dynbench report' shows them "
            "(or run with --verbose)",
            markup=False,
        )
        return
    units = ", ".join(sorted(set(frame["unit"])))
    out.print(
        rich_table(wide, title=f"suite {title}", caption=f"units: {units} (MAdds = multiply-adds)")
    )
    if not verbose:
        return
    madds = frame[frame["metric"] == "madds"]
    for row in madds.drop_duplicates("model").itertuples(index=False):
        counted = detail(row, CounterDetail)
        if counted.disagree:
            rows = madds[madds["model"] == row.model].itertuples(index=False)
            notes = "; ".join(describe_counter(r.method, detail(r, CounterDetail)) for r in rows)
            out.print(
                f"[yellow]! {row.model}: MAdds counters disagree by "
                f"{100 * counted.spread:.2f}% ({notes})[/]"
            )


def print_answer(out: Console, report, where: str) -> None:
    """The report's answer (:mod:`dynbench.report.answer`), plain text."""
    if report.card is None:
        return
    lines = answer_lines(report.card, where, report.machine, report.others)
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def print_published_comparison(out: Console, records: pd.DataFrame) -> None:
    """The measured sizes beside the printed ones, and the conflicts between papers."""
    if records.empty:
        return
    records = records.assign(measured_at=range(len(records)))
    table = compare_published(records)
    if table.empty:
        out.print("no published row refers to the measured models")
        return
    shown = table[COMPACT_COLUMNS].rename(columns=lambda c: c.replace("conv_linear", "conv+fc"))
    out.print(
        rich_table(
            shown,
            title="published vs measured",
            caption="params in parameters, MAdds = multiply-adds; ✓ reproduced to the "
            "printed digit, ≈ one unit off, ✗ not; madds_ok names the counters that "
            "reproduce the figure",
        )
    )
    conflicts = table[table["note"].str.contains("conflict", case=False)]
    for _, row in conflicts.drop_duplicates("note").iterrows():
        out.print(f"[yellow]! {row['model']} ({row['source']} {row['table']}): {row['note']}[/]")
    left = uncompared_published(table)
    if not left.empty:
        out.print(
            rich_table(
                left,
                title="published rows not compared above",
                caption="every other efficiency row of the seed files, with the reason",
            )
        )


def describe_counter(counter: str, counted: CounterDetail) -> str:
    """'fvcore counts batch_norm, skips add' for a disagreement note."""
    parts = []
    extra = counted.extra_ops or {}
    if extra:
        parts.append("also counts " + ", ".join(f"{op} {n:,}" for op, n in extra.items()))
    skipped = counted.skipped_ops or {}
    parts.append("skips " + (", ".join(sorted(skipped)) or "nothing"))
    return f"{counter} " + ", ".join(parts)


def print_failures(err: Console, failures: list[dict]) -> None:
    """One line naming every model that failed, and why (the first message of each)."""
    if not failures:
        return
    seen: dict[str, str] = {}
    for record in failures:
        seen.setdefault(record["model"], f"{record['method']}: {record['detail']['error']}")
    listed = "; ".join(f"{model} ({why})" for model, why in seen.items())
    err.print(f"{len(seen)} model(s) failed: {listed}", markup=False, highlight=False)


def print_inspection(out: Console, inspection: Inspection) -> None:
    """``dynbench inspect``: the per-module table, then each counter's total."""
    out.print(
        rich_table(inspection.modules, title=inspection.title, caption="MAdds = multiply-adds")
    )
    out.print(", ".join(f"{k} {v:,}" for k, v in inspection.params.items()))
    result = inspection.madds
    for counter, total in result.totals.items():
        skipped = ", ".join(f"{op} x{n}" for op, n in result.skipped[counter].items()) or "-"
        value = "failed" if total is None else f"{total:,} MAdds"
        out.print(f"madds ({counter}): {value} (skipped ops: {skipped})", markup=False)
    if result.disagree:
        out.print(f"[yellow]! counters disagree by {100 * result.spread:.2f}%[/]")
    if result.breakdown:
        parts = ", ".join(f"{k} {v:,}" for k, v in result.breakdown.items())
        out.print(f"analytic breakdown (MAdds): {parts}")
    read, static = inspection.weight_bytes
    out.print(f"weights read per image: {read:,} bytes ({read / static:.2f}x the static layers')")
