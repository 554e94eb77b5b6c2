"""Do two runs agree? Their ratio metrics side by side, with the relative difference.

Absolute CPU times on a shared machine move between runs; what a timing suite
promises is that its *ratios* (variant / family baseline) do not. This puts
the ratios of two runs (from the store or from ``--json`` files) next to each
other so that promise can be checked: ``dynbench compare RUN_A RUN_B``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dynbench.errors import DynbenchError
from dynbench.report.data import ci95_bounds, ci95_text
from dynbench.results.names import RATIO_UNIT
from dynbench.results.store import load_results


def load_run(source: str, db: str | None) -> pd.DataFrame:
    """A run's records: ``source`` is a ``--json`` file or a run id in the store."""
    path = Path(source)
    if path.is_file():
        try:
            return pd.DataFrame(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DynbenchError(f"{source!r} is not a dynbench --json file: {exc}") from exc
    frame = load_results(db, run_id=source)
    if frame.empty:
        raise DynbenchError(
            f"{source!r} is neither a file nor a run id in the store; give a --json file "
            "written by 'dynbench run' or a run id shown by 'dynbench export'"
        )
    return frame


def _ratios(frame: pd.DataFrame) -> pd.DataFrame:
    if "unit" not in frame:
        return pd.DataFrame(columns=["model", "metric", "value", "ci95"])
    ratios = frame[frame["unit"] == RATIO_UNIT].drop_duplicates(["model", "metric"], keep="last")
    ci = [ci95_text(*ci95_bounds(r)) for r in ratios.itertuples(index=False)]
    return ratios.assign(ci95=ci)[["model", "metric", "value", "ci95"]]


def compare_ratios(first: pd.DataFrame, second: pd.DataFrame, tolerance_pct: float) -> pd.DataFrame:
    """One row per ratio the two runs share: both values, their CIs, the difference."""
    merged = _ratios(first).merge(_ratios(second), on=["model", "metric"], suffixes=("_a", "_b"))
    if merged.empty:
        raise DynbenchError(
            "the two runs share no ratio measurement (latency_ratio, train_step_ratio); "
            "compare two runs of the same timing suite"
        )
    difference = 100 * (merged["value_b"] - merged["value_a"]).abs() / merged["value_a"]
    return pd.DataFrame(
        {
            "model": merged["model"],
            "metric": merged["metric"],
            "run_a": merged["value_a"].round(3),
            "ci95_a": merged["ci95_a"],
            "run_b": merged["value_b"].round(3),
            "ci95_b": merged["ci95_b"],
            "difference_%": difference.round(2),
            "agree": ["yes" if d <= tolerance_pct else "NO" for d in difference],
        }
    )


def compare_caption(tolerance_pct: float) -> str:
    return f"ratio = variant / family baseline; agree = difference within {tolerance_pct:g}%"


def compare_verdict(table: pd.DataFrame, tolerance_pct: float) -> tuple[bool, str]:
    """Whether every ratio of :func:`compare_ratios`'s table agrees, and the line that says
    so with the largest difference."""
    worst = table["difference_%"].max()
    if not (table["agree"] == "NO").any():
        return True, f"runs agree: largest difference {worst:.2f}% <= {tolerance_pct:g}%"
    return False, f"runs disagree: largest difference {worst:.2f}% > {tolerance_pct:g}%"


def compare_markdown(title: str, table: pd.DataFrame, tolerance_pct: float, verdict: str) -> str:
    """The comparison as a markdown page: title, caption, table, verdict."""
    caption = compare_caption(tolerance_pct)
    table_text = table.to_markdown(index=False)
    return f"# {title}\n\n{caption}.\n\n{table_text}\n\n**{verdict}**\n"
