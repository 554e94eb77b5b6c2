"""The batch-sweep section: latency per image against batch, with each variant's best batch and
where the experts route starts."""

from __future__ import annotations

import pandas as pd

from dynbench.report import figures
from dynbench.report.batches import sweep_points, sweep_table
from dynbench.report.document import Block, Section, Table
from dynbench.report.quality import section_quality

BATCH_NOTE = (
    "Latency per image (ms) at each batch size, from the batch-sweep suite: at each batch "
    "the family is timed interleaved as in the latency suite (median of shuffled rounds, "
    "torch.utils.benchmark), on every CPU core or on the GPU. × = median of the per-round "
    "ratios to the static baseline at the same batch. Best batch = the batch at which a "
    "variant's ratio is smallest (its overhead least); experts from = the smallest batch at "
    "which some of its layers ran the experts route (fast/experts: the K kernels as one dense "
    "conv over the batch, outputs mixed per sample, chosen from shapes by "
    "dynbench.ops.base.experts_pay) instead of forming a kernel per sample (fast/mixed). "
    "Every point, with its interval and implementation, is in batch-sweep.csv."
)


def section(frame: pd.DataFrame) -> Section | None:
    points = sweep_points(frame)
    if points.empty:
        return None
    times = frame[frame["metric"] == "batch_latency_ms"]
    blocks = [Block(text=section_quality(times)), Block(text=BATCH_NOTE)]
    figure = figures.batch_sweep(points)
    if figure is not None:
        blocks.append(Block(heading=figure.title, text=figure.caption, figure=figure))
    table = sweep_table(points)
    numeric = tuple(c for c in table.columns if c.startswith(("ms/", "×", "Best", "Experts")))
    csv = points.drop(columns=["experts"]).round(5)
    blocks.append(Block(table=Table(table, numeric, "batch-sweep.csv", csv)))
    return Section("batch-sweep", "Latency per image against batch", blocks)
