"""Turn pandas DataFrames into rich tables for the terminal."""

from __future__ import annotations

import math

import pandas as pd
from rich.markup import escape
from rich.table import Table


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
