"""The reproduction matrix section: for each seed table, how many printed params and MAdds
figures each counter reproduces, then its rows."""

from __future__ import annotations

import pandas as pd

from dynbench.report.document import Block, Section, Table, decimals
from dynbench.report.matrix import overall_counts, reproduction_matrix


def section(frame: pd.DataFrame) -> Section | None:
    tables, conflicts = reproduction_matrix(frame)
    if not tables:
        return None
    blocks = [
        Block(
            text="Each seed table: how many printed figures are reproduced (✓ to the printed "
            "digit, half-up rounding; ≈ one unit off in the last digit; ✗ not), for params and "
            "for each MAdds counter, then its rows. Δ% = (measured - printed) / printed. Notes "
            "are numbered under each table; conflicts between the papers are listed once, at "
            "the end."
        )
    ]
    overall = overall_counts(tables).astype({"✓": str, "≈": str, "✗": str})
    overall["Reproduced %"] = overall["Reproduced %"].map(lambda v: decimals(v, 1))
    blocks.append(
        Block(
            heading="All seed tables",
            text="The counts below summed over every table; reproduced = (✓ + ≈) / compared.",
            table=Table(overall, ("✓", "≈", "✗", "Reproduced %")),
        )
    )
    for seed in tables:
        counts = Table(seed.counts.astype({"✓": str, "≈": str, "✗": str}), ("✓", "≈", "✗"))
        blocks.append(Block(heading=seed.title, table=counts))
        rows = seed.rows.copy()
        for column in ("Params Δ%", "MAdds Δ% (analytic)", "MAdds Δ% (conv+FC)"):
            rows[column] = rows[column].map(lambda v: decimals(v, 2))
        numeric = ("Params Δ%", "MAdds Δ% (analytic)", "MAdds Δ% (conv+FC)")
        blocks.append(Block(table=Table(rows, numeric), footnotes=seed.footnotes))
    if conflicts:
        blocks.append(Block(heading="Conflicts between the papers", bullets=conflicts))
    return Section("reproduction", "Reproduction matrix", blocks)
