"""The params and MAdds section: each model's size by the papers' counter and the analytic one,
and its ratio to the family baseline."""

from __future__ import annotations

import pandas as pd

from dynbench.report.data import size_table
from dynbench.report.document import Block, Section, Table, decimals, thousands

SIZE_COLUMNS = {
    "model": "Model",
    "operator": "Operator",
    "params": "Params",
    "params_x": "Params ×",
    "madds_conv_linear": "MAdds (conv+FC)",
    "madds_analytic": "MAdds (analytic)",
    "madds_x": "MAdds × (conv+FC)",
    "counters_disagree": "Counters disagree by",
}


def section(frame: pd.DataFrame) -> Section | None:
    sizes = size_table(frame)
    if sizes.empty:
        return None
    shown = sizes[[c for c in SIZE_COLUMNS if c in sizes]].rename(columns=SIZE_COLUMNS)
    for column in ("Params", "MAdds (conv+FC)", "MAdds (analytic)"):
        if column in shown:
            shown[column] = shown[column].map(thousands)
    for column in ("Params ×", "MAdds × (conv+FC)"):
        if column in shown:
            shown[column] = shown[column].map(decimals)
    numeric = ("Params", "Params ×", "MAdds (conv+FC)", "MAdds (analytic)", "MAdds × (conv+FC)")
    note = (
        "Params in parameters; MAdds = multiply-adds at batch 1 (fvcore's unit; torch's FLOPs "
        "halved). conv+FC counts convolution and fully connected layers only; analytic adds "
        "each operator's kernel aggregation and attention-times-feature multiplies. × = ratio "
        "to the family's static baseline. Every counter's total is in sizes.csv."
    )
    table = Table(shown, numeric, "sizes.csv", sizes)
    return Section("sizes", "Params and MAdds", [Block(text=note, table=table)])
