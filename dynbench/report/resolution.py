"""MAdds at other input sizes beside the figures quoted at those sizes.

The spatial DynConv reproduction (seed 004) quotes ptflops GMACs at several input sizes,
written into its rows' labels ("... input (3, 175, 200)"). The ``resolution`` measure counts
ResNet-50 and its spatial DynConv variant at those sizes; each quoted figure is set beside
both models' counts, and the counters that reproduce it to the printed digit are named.
"""

from __future__ import annotations

import re

import pandas as pd

from dynbench.published import load_published
from dynbench.report.data import field_dict
from dynbench.report.published_sizes import match

MODELS = ("resnet50", "resnet50_dynconv")
SIZE = re.compile(r"input \((\d+), ?(\d+), ?(\d+)\)")


def resolution_table(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[frame["metric"] == "resolution_madds"]
    if rows.empty:
        return pd.DataFrame()
    sizes = [tuple(field_dict(s)["input_size"]) for s in rows["settings"]]
    counted = {
        (r.model, size, r.method): r.value
        for r, size in zip(rows.itertuples(index=False), sizes, strict=True)
    }
    table = []
    for pub in load_published().itertuples(index=False):
        found = SIZE.search(pub.row_label)
        if not found or pub.madds_value is None or pd.isna(pub.madds_value):
            continue
        size = tuple(int(v) for v in found.groups())
        if not any(key[1] == size for key in counted):
            continue
        reproduced = []
        for (model, at, counter), value in sorted(counted.items()):
            mark = match(value, pub.madds_value, pub.madds_step) if at == size else ""
            if mark in ("✓", "≈"):
                reproduced.append(f"{model} {counter} {mark}")
        line = {"Quoted row (004)": pub.row_label, "Quoted": pub.madds}
        for model in MODELS:
            value = counted.get((model, size, "ptflops"))
            line[f"{model} (ptflops)"] = "" if value is None else f"{value / 1e9:.3f}G"
        line["Reproduced by"] = ", ".join(reproduced) or "none"
        table.append(line)
    return pd.DataFrame(table)
