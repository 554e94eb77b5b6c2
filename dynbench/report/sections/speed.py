"""The published-speed section: each printed speed figure beside this machine's timing of the
same model, compared as slowdowns over the static baseline."""

from __future__ import annotations

import pandas as pd

from dynbench.report.document import Block, Section, Table, decimals
from dynbench.report.published_speeds import compare_published_speed


def section(frame: pd.DataFrame) -> Section | None:
    speed = compare_published_speed(frame)
    if speed.empty:
        return None
    shown = speed.rename(
        columns={
            "source": "Source",
            "table": "Table",
            "model": "Model",
            "hardware": "Paper's hardware",
            "printed": "Printed",
            "printed_ratio": "Printed ×",
            "measured": "Measured",
            "measured_ratio": "Measured ×",
            "ci95": "95% CI",
            "verdict": "Verdict",
        }
    )
    for column in ("Printed ×", "Measured ×"):
        shown[column] = shown[column].map(decimals)
    note = (
        "Each published speed figure beside this machine's timing of the same model. The papers "
        "timed other hardware, so only the slowdown over the static baseline is compared. "
        "Verdict: as printed = the printed ratio lies in our interval; costlier / cheaper here "
        "= the dynamic model costs more / less, relative to its baseline, here; inconclusive "
        "(noisy) = the timing may not decide (see the verdict rules)."
    )
    return Section(
        "speed",
        "Published speed versus measured",
        [Block(text=note, table=Table(shown, ("Printed ×", "Measured ×")))],
    )
