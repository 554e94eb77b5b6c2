"""Spatial DynConv's points: latency and MAdds against mask density, and break-even.

The sparsity measure stores one point per (model, mask source, density, execution); the
newest of each is used. The *break-even density* is where the sparse execution's latency
ratio to dense crosses 1, interpolated linearly between the measured densities: below it
sparse execution pays, above it the gathering and scattering cost more than they save.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from dynbench.report.data import detail, with_settings
from dynbench.report.quality import ratio_quality
from dynbench.results.details import BlocksDetail, RatioDetail, TimingDetail
from dynbench.results.names import EXECUTIONS


def spatial_points(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, mask, density, execution): ratio to dense with its interval,
    whether the timing is noisy, and the conditional MAdds (method dynconv)."""
    rows = frame[frame["metric"].isin(["spatial_latency_ratio", "spatial_latency_ms"])]
    madds = frame[(frame["metric"] == "conditional_madds") & (frame["method"] == "dynconv")]
    if rows.empty:
        return pd.DataFrame()
    rows = with_settings(rows, mask=None, density=None, execution=None, impl="").sort_values(
        "measured_at", kind="stable"
    )
    keys = ["model", "mask", "density", "execution", "metric"]
    rows = rows.drop_duplicates(keys, keep="last")
    times = {
        (r.model, r.mask, r.density, r.execution): detail(r, TimingDetail)
        for r in rows[rows["metric"] == "spatial_latency_ms"].itertuples()
    }
    madds = with_settings(madds, mask=None, density=None).sort_values("measured_at", kind="stable")
    madds_at = {(r.model, r.mask, r.density): r.value for r in madds.itertuples()}
    chosen_at = {
        (r.model, r.mask, r.density): _granularities(detail(r, BlocksDetail))
        for r in madds.itertuples()
    }
    points = []
    for r in rows[rows["metric"] == "spatial_latency_ratio"].itertuples():
        ratio = detail(r, RatioDetail)
        low, high = ratio.ci95
        details = [
            times.get((r.model, r.mask, r.density, r.execution)),
            times.get((r.model, r.mask, r.density, "dense")),
        ]
        quality = ratio_quality(r.value, ratio, [d for d in details if d is not None])
        full = madds_at.get((r.model, r.mask, 1.0))
        here = madds_at.get((r.model, r.mask, r.density))
        points.append(
            {
                "model": r.model,
                "mask": r.mask,
                "density": float(r.density),
                "execution": r.execution,
                "impl": r.impl,
                "granularity": chosen_at.get((r.model, r.mask, r.density), ""),
                "ratio": float(r.value),
                "low": low,
                "high": high,
                "noisy": quality.noisy,
                "quality": quality.text(),
                "madds_vs_full": here / full if here is not None and full else None,
                "rounds": ratio.rounds,
            }
        )
    return pd.DataFrame(points).sort_values(["model", "mask", "execution", "density"])


def _granularities(blocks: BlocksDetail) -> str:
    """How many blocks ran at each granularity, e.g. ``pixel 14, tile 2``."""
    counts = Counter(b.get("granularity") for b in blocks.blocks)
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()) if kind)


def gpu_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Images/s of each execution at each (model, mask, density, batch), newest record of each,
    with sparse / dense; empty when no GPU throughput was measured."""
    rows = frame[frame["metric"] == "spatial_gpu_images_per_s"].sort_values(
        "measured_at", kind="stable"
    )
    if rows.empty:
        return pd.DataFrame()
    rows = with_settings(rows, mask=None, density=None, execution=None, batch=None)
    rows = rows.drop_duplicates(["model", "mask", "density", "batch", "execution"], keep="last")
    table = []
    keys = ["model", "mask", "density", "batch"]
    for (model, mask, density, _), group in rows.groupby(keys, sort=False):
        speed = dict(zip(group["execution"], group["value"], strict=True))
        dense, sparse = speed.get("dense"), speed.get("sparse")
        both = pd.notna(sparse) and pd.notna(dense)
        cells = {
            f"{e} (images/s)": "OOM" if pd.isna(speed.get(e)) else f"{speed[e]:.0f}"
            for e in EXECUTIONS
            if e in speed
        }
        table.append(
            {
                "Model": model,
                "Mask": mask,
                "Density": f"{density:g}",
                "Batch": int(group["batch"].iloc[0]),
                **cells,
                "Sparse / dense": f"{sparse / dense:.3f}" if both else "",
            }
        )
    return pd.DataFrame(table)


def break_even(points: pd.DataFrame) -> float | None | str:
    """The density where ``points`` (one execution of one mask, by density) cross ratio 1.

    A float when they cross; "above" when every measured density is faster than dense,
    "below" when none is.
    """
    ordered = points.sort_values("density")
    pairs = list(zip(ordered["density"], ordered["ratio"], strict=True))
    if all(r < 1 for _, r in pairs):
        return "above"
    if pairs and pairs[0][1] >= 1:
        return "below"
    for (d0, r0), (d1, r1) in zip(pairs, pairs[1:], strict=False):
        if r0 < 1 <= r1:
            return d0 + (1 - r0) * (d1 - d0) / (r1 - r0)
    return None


def break_even_text(points: pd.DataFrame) -> str:
    value = break_even(points)
    top, bottom = points["density"].max(), points["density"].min()
    if value == "above":
        return f"above {top:g} (sparse was faster at every measured density)"
    if value == "below":
        return f"below {bottom:g} (sparse was never faster)"
    return "not found" if value is None else f"{value:.2f}"
