"""The plots section: MAdds against latency, published against measured, the counters' totals,
the timing ratios with each claim's printed value marked, GPU throughput."""

from __future__ import annotations

import pandas as pd

from dynbench.report import figures
from dynbench.report.claims import load_claims, paper_of
from dynbench.report.document import Block, Section


def section(frame: pd.DataFrame) -> Section | None:
    claims = load_claims()
    printed_cpu: dict[str, list[tuple[float, str]]] = {}
    printed_train: dict[str, list[tuple[float, str]]] = {}
    for claim in claims.itertuples(index=False):
        label = f"{paper_of(claim)} {'speed table' if claim.kind == 'speed' else claim.kind}"
        if claim.kind in ("speed", "time"):
            printed_cpu.setdefault(claim.model, []).append((claim.printed_ratio, label))
        if claim.kind == "train":
            printed_train.setdefault(claim.model, []).append((claim.printed_ratio, label))
    made = [
        figures.madds_vs_latency(frame),
        figures.published_vs_measured(frame),
        figures.counter_totals(frame),
        figures.timing_ratios(frame, "latency_ratio", printed_cpu),
        figures.gpu_throughput(frame),
        figures.timing_ratios(frame, "train_step_ratio", printed_train),
    ]
    blocks = [Block(heading=f.title, text=f.caption, figure=f) for f in made if f is not None]
    if not blocks:
        return None
    absent = len(made) - len(blocks)
    if absent:
        blocks.append(Block(text=f"{absent} plot(s) left out: this store has no data for them."))
    return Section("plots", "Plots", blocks)
