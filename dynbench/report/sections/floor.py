"""The latency floor section: each model's floor from the machine's ceilings beside its
latency, and what binds each layer's floor."""

from __future__ import annotations

import pandas as pd

from dynbench.report.document import Block, Section, Table, decimals, thousands
from dynbench.report.floor import FLOOR_NOTE, ceilings, floor_table, latency_vs_floor, layer_table


def section(frame: pd.DataFrame, sizes: pd.DataFrame) -> Section | None:
    """Each model's latency floor from one machine's ceilings (``frame``) and the per-layer
    figures (``sizes``: any machine's, they depend on none), beside its latency."""
    if not (sizes["metric"] == "layer_bytes_per_image").any():
        return None
    limits = ceilings(frame)
    if limits is None:
        why = "this store has no single-thread ceilings: run 'dynbench run --suite machine' into it"
        return Section("floor", "Latency floor", [Block(text=f"{FLOOR_NOTE} No floor: {why}.")])
    with_layers = pd.concat([frame, sizes[sizes["metric"] == "layer_bytes_per_image"]])
    table = floor_table(with_layers, limits)
    shown = pd.DataFrame(
        {
            "Model": table["model"],
            "Floor ms": table["floor_ms"].map(lambda v: decimals(v, 2)),
            "Latency ms": table["latency_ms"].map(lambda v: decimals(v, 2)),
            "Latency / floor": table["latency_over_floor"].map(lambda v: decimals(v, 2)),
            "Floor overhead ms": table.get("floor_overhead_ms", pd.Series(dtype=float)).map(
                lambda v: decimals(v, 2)
            ),
            "Overhead ms [95% CI]": [_overhead_cell(r) for r in table.itertuples(index=False)],
            "Floor explains": table.get("floor_explains", pd.Series(dtype=float)).map(
                lambda v: "" if pd.isna(v) else f"{100 * v:.0f}%"
            ),
            "Overhead / floor's": table.get("overhead_over_floor", pd.Series(dtype=float)).map(
                lambda v: decimals(v, 2)
            ),
            "… at base efficiency": table.get(
                "overhead_over_scaled_floor", pd.Series(dtype=float)
            ).map(lambda v: decimals(v, 2)),
        }
    )
    numeric = tuple(shown.columns[1:])
    layers = layer_table(with_layers, limits)
    where = pd.DataFrame({"Model": table["model"]})
    for kind in ("memory", "compute"):
        mine = layers[layers["bound"] == kind].groupby("model")["floor_ms"]
        where[f"{kind.title()}-bound layers"] = where["Model"].map(mine.count()).fillna(0)
        where[f"Their floor ms ({kind})"] = (
            where["Model"]
            .map(mine.sum())
            .map(lambda v: decimals(v, 2) if not pd.isna(v) else "0.00")
        )
        where[f"{kind.title()}-bound layers"] = where[f"{kind.title()}-bound layers"].map(thousands)
    blocks = [
        Block(text=f"{FLOOR_NOTE} Ceilings: {limits.text}."),
        Block(table=Table(shown, numeric, "floor.csv", table)),
    ]
    figure = latency_vs_floor(table)
    if figure is not None:
        blocks.append(Block(heading=figure.title, text=figure.caption, figure=figure))
    blocks.append(
        Block(
            heading="What binds each layer's floor",
            text="Layers whose bytes / bandwidth exceed their MAdds / GEMM rate are memory-bound.",
            table=Table(where, tuple(where.columns[1:]), "floor-layers.csv", layers),
        )
    )
    return Section("floor", "Latency floor", blocks)


def _overhead_cell(row) -> str:
    value = getattr(row, "overhead_ms", None)
    if value is None or pd.isna(value):
        return ""
    low, high = getattr(row, "overhead_low_ms", None), getattr(row, "overhead_high_ms", None)
    ci = "" if low is None or pd.isna(low) else f" [{low:.2f}, {high:.2f}]"
    return f"{value:.2f}{ci}"
