"""The section that sets the user's figures beside the reference machine's (the committed
runs shipped with dynbench), judged by the same rules."""

from __future__ import annotations

import pandas as pd

from dynbench.report.document import Block, Section, Table
from dynbench.report.reference import beside_reference, reference_line


def beside_reference_section(frame: pd.DataFrame, reference: pd.DataFrame) -> tuple[Section, str]:
    """The section, and the line the answer adds about where the two machines differ."""
    table, name = beside_reference(frame, reference)
    text = (
        f"The same claims on the reference machine, {name} (the committed runs shipped "
        "with dynbench), judged by the same rules. Beyond noise = the two newest runs' "
        "95% intervals do not overlap and the ratios are more than 3% apart."
    )
    blocks = [Block(text=text)]
    if not table.empty:
        blocks.append(Block(table=Table(table, ("Difference",))))
    return Section("reference", "Beside the reference machine", blocks), reference_line(table, name)
