"""The latency-by-option section: each model timed with other options than the papers'
(compile, dtype, layout, threads), side by side."""

from __future__ import annotations

import pandas as pd

from dynbench.report.data import (
    DEFAULT_OPTIONS,
    ci95_bounds,
    ci95_text,
    detail,
    family_of,
    latest_by_options,
    options_text,
)
from dynbench.report.document import MAX_MARKDOWN_COLUMNS, Block, Section, Table
from dynbench.results.details import ErrorDetail, TimingDetail

OPTIONS_NOTE = (
    "The latency suite with other options than the papers' setting (eager PyTorch, fp32, one "
    "thread): each cell is the median latency and the ratio to the family baseline timed "
    "with the same options, with its 95% interval. The scorecard judges the claims on the "
    "papers' setting only; set side by side, the eager and compiled ratios show whether a "
    "compiler narrows (or widens) the cost of dynamic per-sample kernels."
)


def section(frame: pd.DataFrame) -> Section | None:
    """Latency per model and option set (compile, dtype, layout, threads), side by side,
    and the models that failed to compile, with the compiler's reason."""
    timed = latest_by_options(frame)
    failed = frame[(frame["metric"] == "error") & (frame["method"] == "compile")]
    if (timed.empty or set(timed["options"]) == {DEFAULT_OPTIONS}) and failed.empty:
        return None
    blocks = [Block(text=OPTIONS_NOTE)]
    if not timed.empty:
        cells: dict[tuple[str, str], str] = {}
        for r in timed[timed["metric"] == "latency_ms"].itertuples(index=False):
            ratio = timed[
                (timed["model"] == r.model)
                & (timed["options"] == r.options)
                & (timed["metric"] == "latency_ratio")
            ]
            text = f"{r.value:.2f} ms"
            if not ratio.empty:
                row = ratio.iloc[-1]
                ci = ci95_text(*ci95_bounds(row))
                text += f", {row['value']:.3f}× {ci}".rstrip()
            compile_s = detail(r, TimingDetail).compile_s
            if compile_s is not None:
                text += f" (compiled in {compile_s:.1f} s)"
            cells[(r.model, r.options)] = text
        options = sorted(set(timed["options"]), key=lambda o: (o != DEFAULT_OPTIONS, o))
        options = options[: MAX_MARKDOWN_COLUMNS - 1]
        models = sorted({m for m, _ in cells}, key=lambda m: (family_of(m)[0], m))
        rows = [{"Model": m, **{o: cells.get((m, o), "") for o in options}} for m in models]
        blocks.append(Block(table=Table(pd.DataFrame(rows), tuple(options))))
    if not failed.empty:
        bullets = [
            f"{r.model} ({options_text(r.settings)}): {detail(r, ErrorDetail).error or ''}"
            for r in failed.drop_duplicates(["model", "settings"], keep="last").itertuples()
        ]
        blocks.append(Block(heading="Failed to compile", bullets=bullets))
    return Section("options", "Latency by option (compile, dtype, layout, threads)", blocks)
