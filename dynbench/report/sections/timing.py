"""One section per timed metric (CPU latency, training step): each model's time, spread, faults
and ratio to its family baseline, led by the section's quality line."""

from __future__ import annotations

import pandas as pd

from dynbench.report.data import TIMING_SECTIONS, latest, timing_table
from dynbench.report.document import Block, Section, Table, decimals
from dynbench.report.quality import section_quality
from dynbench.results.names import unit_of


def sections(frame: pd.DataFrame) -> list[Section]:
    values = latest(frame)
    sections = []
    for metric, ratio, title, note in TIMING_SECTIONS:
        times = values[values["metric"] == metric]
        if times.empty:
            continue
        table = timing_table(values, metric, ratio)
        unit = unit_of(metric)
        digits = {unit: 2, "IQR %": 1, "Faults / call": 1, "× baseline": 3}
        for column, places in digits.items():
            table[column] = table[column].map(lambda v, n=places: decimals(v, n))
        numeric = tuple(digits)
        blocks = [
            Block(text=section_quality(times)),
            Block(text=note, table=Table(table, numeric)),
        ]
        sections.append(Section(metric.split("_")[0].replace("train", "train-step"), title, blocks))
    return sections
