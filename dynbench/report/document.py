"""The report as a document: sections of blocks (a heading, text, bullets, a table, a figure),
which the markdown and HTML writers turn into files; and the two number formats every
section uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dynbench.report.figures import Figure

MAX_MARKDOWN_COLUMNS = 10


@dataclass
class Table:
    """A table as shown: formatted strings, which columns are numbers, and where a wider
    version of it is written (a CSV beside the report)."""

    frame: pd.DataFrame
    numeric: tuple[str, ...] = ()
    csv_name: str = ""
    csv: pd.DataFrame | None = None
    # HTML only: a column whose cells open to a longer text (the claim's sentence), and
    # whether the table becomes one card per row on a narrow screen
    details: dict[str, list[str]] = field(default_factory=dict)
    cards: bool = False


@dataclass
class Block:
    heading: str = ""
    text: str = ""
    bullets: list[str] = field(default_factory=list)
    table: Table | None = None
    footnotes: list[str] = field(default_factory=list)
    figure: Figure | None = None


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    environment: dict
    sections: list[Section] = field(default_factory=list)
    # the scorecard of the machine the answer is about, its name, and the other machines'
    # tallies: what the terminal and the first screen say before any table
    card: pd.DataFrame | None = None
    machine: str = ""
    others: list[str] = field(default_factory=list)


def thousands(value: object) -> str:
    return "" if value is None or pd.isna(value) else f"{int(value):,}"


def decimals(value: object, digits: int = 3) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"
