"""The MAdds-by-input-size section, beside the sizes the spatial DynConv reproduction quotes."""

from __future__ import annotations

import pandas as pd

from dynbench.report.document import Block, Section, Table
from dynbench.report.resolution import resolution_table


def section(frame: pd.DataFrame) -> Section | None:
    table = resolution_table(frame)
    if table.empty:
        return None
    note = (
        "MAdds counted at the input sizes the spatial DynConv reproduction quotes ptflops "
        "GMACs for (dynbench run --suite resolution), beside each quoted figure. Reproduced by "
        "names every model and counter that gives the quoted figure to its printed digit (✓) "
        "or one unit off (≈); the published data's notes say why the others are not."
    )
    numeric = tuple(c for c in table.columns if "ptflops" in c)
    return Section(
        "resolution", "MAdds by input size", [Block(text=note, table=Table(table, numeric))]
    )
