"""The latency floor: how much of each measured latency and overhead is inherent.

Derived here, not measured: the store holds this machine's ceilings (the ``machine``
suite: read bandwidth and GEMM rate) and each model's per-layer MAdds and bytes (the
``roofline`` measure), and the floor of a model is the sum over its layers of
max(MAdds / GEMM rate, bytes / bandwidth) (:func:`dynbench.measure.roofline.floor_ms`).
The batch-1 latency is single-thread, so its floor uses the single-thread ceilings of
the machine that measured it. A variant's overhead over its baseline is set against the
floor's: the share the floor explains is (floor_variant - floor_base) /
(latency_variant - latency_base), and the issue's target is a measured overhead at most
1.25 times the floor's.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from dynbench.measure.roofline import floor_ms, layer_bytes, layer_floor_s
from dynbench.report.data import ci95_bounds, detail, family_of, latest
from dynbench.report.figures import Figure, render
from dynbench.report.machines import machine_of
from dynbench.results.details import LayerBytesDetail
from dynbench.results.names import MACHINE_MODEL, ceiling_scope

# the overhead target of issue 14: measured overhead at most this many times the floor's
OVERHEAD_TARGET = 1.25
FLOOR_NOTE = (
    "A roofline lower bound of each model's batch-1 latency, derived from stored figures: "
    "the sum over its conv, linear and dynamic-operator layers of max(MAdds / GEMM rate, "
    "bytes / read bandwidth), bytes = the layer's weights (all K kernels of a kernel-dynamic "
    "operator) plus its input and output activations, plus twice (written, read back) the "
    "intermediates the route it ran forms: a per-sample mixed kernel, ODConv's unfolded "
    "input; fp32; batch norms, activations and "
    "adds are left out (a compiler may fuse them). Overhead = the variant's latency minus "
    "its baseline's, (ratio - 1) x baseline latency with the ratio's 95% interval; floor "
    "explains = floor overhead / measured overhead; overhead / floor's above "
    f"{OVERHEAD_TARGET:g} means the implementation, not the inherent work, takes the rest. "
    "The baseline itself runs above its floor: '… at base efficiency' divides that ratio by "
    "the baseline's latency / floor, so that above 1 the variant's extra work runs less "
    "efficiently than the baseline's own layers, below 1 more."
)


@dataclass(frozen=True)
class Ceilings:
    """The single-thread ceilings a floor was computed with: the best of the machine's
    ``runs`` measurements of each (a floor must not exceed what the machine can do), and
    the range they spanned."""

    gb_per_s: float
    gmadds_per_s: float
    gb_range: tuple[float, float]
    gmadds_range: tuple[float, float]
    runs: int
    machine: str  # its label and fingerprint

    @property
    def text(self) -> str:
        return (
            f"read bandwidth {self.gb_per_s:.1f} GB/s and fp32 GEMM rate "
            f"{self.gmadds_per_s:.1f} GMAdds/s, 1 thread, machine {self.machine}: the best of "
            f"{self.runs} measurement(s) (ranges {self.gb_range[0]:.1f}-{self.gb_range[1]:.1f} "
            f"GB/s, {self.gmadds_range[0]:.1f}-{self.gmadds_range[1]:.1f} GMAdds/s)"
        )


def ceilings(frame: pd.DataFrame) -> Ceilings | None:
    """The best single-thread ceilings of ``frame`` (one machine's records), if both exist."""
    mine = frame[(frame["model"] == MACHINE_MODEL) & (frame["method"] == ceiling_scope(1))]
    read = mine[mine["metric"] == "read_bandwidth"]["value"].dropna()
    gemm = mine[mine["metric"] == "gemm_rate"]["value"].dropna()
    if read.empty or gemm.empty:
        return None
    machine = machine_of(mine["environment"].iloc[-1])
    name = machine.fingerprint
    if machine.name != machine.fingerprint:
        name = f"{machine.name} ({machine.fingerprint})"
    return Ceilings(
        read.max(),
        gemm.max(),
        (read.min(), read.max()),
        (gemm.min(), gemm.max()),
        min(len(read), len(gemm)),
        name,
    )


def _layers(frame: pd.DataFrame) -> dict[str, list[dict]]:
    values = latest(frame)
    rows = values[values["metric"] == "layer_bytes_per_image"]
    return {r.model: detail(r, LayerBytesDetail).layers for r in rows.itertuples(index=False)}


def floor_table(frame: pd.DataFrame, limits: Ceilings) -> pd.DataFrame:
    """One row per model with per-layer figures: its floor, its latency where measured, and
    for a variant its measured and floor overhead over the family baseline (numbers)."""
    values = latest(frame)
    latency = values[values["metric"] == "latency_ms"].set_index("model")["value"]
    ratios = {r.model: r for r in values[values["metric"] == "latency_ratio"].itertuples()}
    floors = {
        model: floor_ms(layers, limits.gmadds_per_s * 1e9, limits.gb_per_s * 1e9)
        for model, layers in _layers(frame).items()
    }
    rows = []
    for model, floor in floors.items():
        family, operator = family_of(model)
        measured = latency.get(model)
        row = {
            "model": model,
            "family": family,
            "operator": operator,
            "floor_ms": floor,
            "latency_ms": measured,
            "latency_over_floor": None if measured is None else measured / floor,
        }
        base_latency, base_floor = latency.get(family), floors.get(family)
        ratio = ratios.get(model)
        if model != family and base_floor is not None:
            row["floor_overhead_ms"] = floor - base_floor
        if model != family and ratio is not None and base_latency is not None:
            low, high = ci95_bounds(ratio)
            row["overhead_ms"] = (ratio.value - 1) * base_latency
            row["overhead_low_ms"] = None if low is None else (low - 1) * base_latency
            row["overhead_high_ms"] = None if high is None else (high - 1) * base_latency
            floor_overhead = row.get("floor_overhead_ms")
            if floor_overhead is not None and row["overhead_ms"] > 0 and floor_overhead > 0:
                row["floor_explains"] = floor_overhead / row["overhead_ms"]
                row["overhead_over_floor"] = row["overhead_ms"] / floor_overhead
                # the overhead its extra work would take at the baseline's own efficiency
                row["overhead_over_scaled_floor"] = row["overhead_over_floor"] * (
                    base_floor / base_latency
                )
        rows.append(row)
    table = pd.DataFrame(rows)
    order = table.assign(variant=table["operator"] != "static")
    return table.loc[order.sort_values(["family", "variant", "model"]).index].reset_index(drop=True)


def layer_table(frame: pd.DataFrame, limits: Ceilings) -> pd.DataFrame:
    """Every layer's MAdds, bytes, both bounds in ms and which one binds."""
    rows = []
    for model, layers in _layers(frame).items():
        for layer in layers:
            nbytes = layer_bytes(layer)
            compute = 1e3 * layer["madds"] / (limits.gmadds_per_s * 1e9)
            memory = 1e3 * nbytes / (limits.gb_per_s * 1e9)
            rows.append(
                {
                    "model": model,
                    **layer,
                    "compute_ms": compute,
                    "memory_ms": memory,
                    "floor_ms": 1e3
                    * layer_floor_s(
                        layer["madds"], nbytes, limits.gmadds_per_s * 1e9, limits.gb_per_s * 1e9
                    ),
                    "bound": "memory" if memory > compute else "compute",
                }
            )
    return pd.DataFrame(rows)


def latency_vs_floor(table: pd.DataFrame) -> Figure | None:
    """Measured batch-1 latency beside the floor, one pair of bars per model."""
    shown = table.dropna(subset=["latency_ms"])
    if shown.empty:
        return None
    shown = shown.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.2, 0.34 * len(shown) + 1.8))
    positions = range(len(shown))
    ax.barh([p + 0.2 for p in positions], shown["latency_ms"], height=0.4, label="measured")
    ax.barh(
        [p - 0.2 for p in positions],
        shown["floor_ms"],
        height=0.4,
        color="#bbb",
        label="floor: Σ over layers of max(MAdds / GEMM rate, bytes / bandwidth)",
    )
    for p, r in zip(positions, shown.itertuples(index=False), strict=True):
        ax.text(r.latency_ms, p + 0.2, f" {r.latency_over_floor:.2f}x", va="center", fontsize=7)
    ax.set_yticks(list(positions), shown["model"], fontsize=8)
    ax.set_xlabel("ms per image, batch 1, one thread")
    ax.set_xlim(0, 1.15 * shown["latency_ms"].max())
    ax.legend(fontsize=8, ncol=2, loc="lower left", bbox_to_anchor=(0, 1), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return render(
        fig,
        "latency-vs-floor",
        "Measured latency against its floor",
        "Grey: the floor this machine's single-thread ceilings allow; the label is measured / "
        "floor. A variant whose gap over its baseline's bar pair is much wider than the "
        "floor's pays for implementation, not for bytes or arithmetic it must do.",
    )
