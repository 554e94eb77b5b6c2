"""The reproduction matrix: per seed table, how many printed figures we reproduce, then rows.

Built on :func:`dynbench.report.published_sizes.compare_published`. Each table's heading
names the params convention of each of its sections (fixed by the section's baseline row,
:mod:`dynbench.published.conventions`). A row's note becomes a
numbered footnote under its table (the same note, numbered once per table); the conflicts
between papers are collected once for their own subsection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dynbench.published.conventions import load_madds_conventions
from dynbench.report.published_sizes import compare_published
from dynbench.results.names import COUNTERS

MARKS = ("✓", "≈", "✗")
SOURCES = {
    "000": "DY-Conv reproduction (Malhotra)",
    "001": "DY-Conv reproduction",
    "002": "DCD (Li et al., ICLR 2021)",
    "003": "ODConv (Li et al., ICLR 2022)",
    "004": "Spatial DynConv reproduction",
}


@dataclass
class SeedTable:
    """One printed table: its counts, its rows, and the footnotes its rows point to."""

    title: str
    counts: pd.DataFrame
    rows: pd.DataFrame
    footnotes: list[str] = field(default_factory=list)


def _mark(status: object) -> str:
    text = str(status or "")
    return next((m for m in MARKS if text.startswith(m)), "")


def _counts(table: pd.DataFrame) -> pd.DataFrame:
    """Rows: params and each counter; columns: ✓, ≈, ✗ (figures printed and compared)."""
    lines = []
    params = table["params_ok"].map(_mark)
    lines.append({"Figure": "params", **{m: int((params == m).sum()) for m in MARKS}})
    for counter in COUNTERS:
        column = f"{counter}_Δ%"
        if column not in table or table[column].isna().all():
            continue
        marks = [
            _mark(mark)
            for mark, value in zip(table[f"{counter}_ok"], table[column], strict=True)
            if not pd.isna(value)
        ]
        lines.append({"Figure": f"MAdds ({counter})", **{m: marks.count(m) for m in MARKS}})
    for name in dict.fromkeys(table.get("paper_convention", pd.Series(dtype=str))):
        if not name:
            continue
        own = table[(table["paper_convention"] == name) & table["paper_Δ%"].notna()]
        marks = [_mark(mark) for mark in own["paper_ok"]]
        lines.append({"Figure": f"MAdds ({name})", **{m: marks.count(m) for m in MARKS}})
    return pd.DataFrame(lines)


def overall_counts(tables: list[SeedTable]) -> pd.DataFrame:
    """The tables' counts summed per figure, with the share reproduced ((✓ + ≈) / compared).

    The share of params reproduced over every row with a model is what a reader checks first
    (issue 12 asks for 90%), so the report states it rather than leave the sum to the reader.
    """
    if not tables:
        return pd.DataFrame(columns=["Figure", *MARKS, "Reproduced %"])
    stacked = pd.concat([seed.counts for seed in tables], ignore_index=True)
    canonical = ["params", *(f"MAdds ({counter})" for counter in COUNTERS)]
    papers = sorted(set(stacked["Figure"]) - set(canonical))  # the papers' conventions
    order = [figure for figure in [*canonical, *papers] if figure in set(stacked["Figure"])]
    summed = stacked.groupby("Figure")[list(MARKS)].sum().loc[order].reset_index()
    compared = summed[list(MARKS)].sum(axis=1)
    reproduced = summed["✓"] + summed["≈"]
    summed["Reproduced %"] = (100 * reproduced / compared.where(compared > 0)).round(1)
    return summed


def _paper_cell(name: str, mark: str, delta: float | None) -> str:
    """'paper:dcd ✗ (+28.18%)': the row's MAdds under its paper's own convention (beside
    the generic counters' marks in the same cell: a markdown table has at most 10 columns)."""
    if not name or delta is None or pd.isna(delta):
        return ""
    return f"{name} {mark} ({delta:+.2f}%)"


def _conventions(table: pd.DataFrame) -> str:
    """' (params: ...)': the params convention of the table's sections that print params,
    once per convention, naming the sections only when the table's sections differ."""
    printed = table[table["params_pub"].astype(bool)]
    sections: dict[str, list[str]] = {}
    for heading in dict.fromkeys(printed["convention"]):
        backbone, label = heading.split(": ", 1)
        sections.setdefault(label, []).append(backbone)
    if not sections:
        return ""
    if len(sections) == 1:
        return f" (params: {next(iter(sections))})"
    return " (params: " + "; ".join(f"{', '.join(b)}: {c}" for c, b in sections.items()) + ")"


def reproduction_matrix(measurements: pd.DataFrame) -> tuple[list[SeedTable], list[str]]:
    """(one entry per seed table, the conflicts between papers listed once)."""
    compared = compare_published(measurements)
    papers = load_madds_conventions()
    if compared.empty:
        return [], []
    tables = []
    conflicts: list[str] = []
    for (source, table_name), table in compared.groupby(["source", "table"], sort=True):
        notes: list[str] = []
        marks = []
        for note in table["note"]:
            if not note:
                marks.append("")
                continue
            if "conflict" in note.lower() and note not in conflicts:
                conflicts.append(note)
            if note not in notes:
                notes.append(note)
            marks.append(f"[{notes.index(note) + 1}]")
        rows = pd.DataFrame(
            {
                "Row as printed": table["row"].values,
                "Model": table["model"].values,
                "Params printed": table["params_pub"].values,
                "Params Δ%": table["params_Δ%"].values,
                "Params": table["params_ok"].values,
                "MAdds printed": table["madds_pub"].values,
                "MAdds Δ% (analytic)": table["analytic_Δ%"].values,
                "MAdds Δ% (conv+FC)": table["conv_linear_Δ%"].values,
                "MAdds reproduced by": [
                    "; ".join(filter(None, (best, _paper_cell(name, mark, delta))))
                    for best, name, mark, delta in zip(
                        table["madds_ok"],
                        table["paper_convention"],
                        table["paper_ok"],
                        table["paper_Δ%"],
                        strict=True,
                    )
                ],
                "Note": marks,
            }
        )
        title = f"{SOURCES.get(source, source)}: {table_name}{_conventions(table)}"
        paper = papers.get(source)
        if paper is not None and (table["paper_convention"] == paper.name).any():
            notes.append(paper.footnote())
        tables.append(SeedTable(title, _counts(table), rows, notes))
    return tables, conflicts
