"""The batch sweep in the report: per-image latency against batch, and where it turns.

The batch-sweep measure stores, per (model, batch, device), the per-image latency and
each variant's ratio to its baseline at that batch; the newest of each is used. Two
batches are named per variant:

* the *best batch*: where the variant's ratio to its baseline is smallest, i.e. where
  the dynamic model's overhead is least (the crossover of its cost curve with the
  baseline's, if the ratio ever reaches 1);
* *experts from*: the smallest batch at which any of its layers ran the experts route
  (``fast/experts``: the K kernels as one dense conv, outputs mixed per sample), the
  batch where the shape rule of :func:`dynbench.ops.base.experts_pay` took over.
"""

from __future__ import annotations

import pandas as pd

from dynbench.report.data import ci95_bounds, detail, family_of, with_settings
from dynbench.report.quality import model_noise
from dynbench.results.details import TimingDetail
from dynbench.results.names import EXPERTS

EXPERTS_IMPL = f"fast/{EXPERTS}"


def sweep_points(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, device, batch): ms per image, the ratio to the baseline with its
    interval (1 for the baseline), the implementation that ran and whether it is noisy."""
    rows = frame[frame["metric"].isin(["batch_latency_ms", "batch_latency_ratio"])]
    if rows.empty:
        return pd.DataFrame()
    rows = with_settings(rows, batch=1, device="cpu", impl="")
    rows = rows.assign(batch=rows["batch"].astype(int))
    if "measured_at" in rows:
        rows = rows.sort_values("measured_at", kind="stable")
    rows = rows.drop_duplicates(["model", "metric", "device", "batch"], keep="last")
    ratios = {
        (r.model, r.device, r.batch): r
        for r in rows[rows["metric"] == "batch_latency_ratio"].itertuples()
    }
    points = []
    for r in rows[rows["metric"] == "batch_latency_ms"].itertuples():
        ratio = ratios.get((r.model, r.device, r.batch))
        low, high = (None, None) if ratio is None else ci95_bounds(ratio)
        timing = detail(r, TimingDetail)
        family, operator = family_of(r.model)
        points.append(
            {
                "model": r.model,
                "family": family,
                "operator": operator,
                "device": r.device,
                "batch": r.batch,
                "ms_per_image": float(r.value),
                "ratio": 1.0 if ratio is None else float(ratio.value),
                "low": low,
                "high": high,
                "impl": r.impl,
                "experts": EXPERTS_IMPL in r.impl.split(","),
                "noisy": bool(model_noise(timing)),
                "iqr": timing.iqr_over_median,
                "load": timing.load_before,
            }
        )
    if not points:
        return pd.DataFrame()
    return pd.DataFrame(points).sort_values(["device", "family", "model", "batch"])


def best_batch(points: pd.DataFrame) -> int:
    """The batch at which one variant's ratio to its baseline is smallest."""
    return int(points.loc[points["ratio"].idxmin(), "batch"])


def experts_from(points: pd.DataFrame) -> int | None:
    """The smallest batch at which one model ran the experts route in any layer."""
    on = points[points["experts"]]
    return None if on.empty else int(on["batch"].min())


def sweep_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (device, model): ms per image and ratio at the smallest and the largest
    batch swept, the best batch with its ratio, and where the experts route switched on."""
    low, high = int(points["batch"].min()), int(points["batch"].max())
    rows = []
    for (device, model), group in points.groupby(["device", "model"], sort=False):
        at = group.set_index("batch")
        static = group["operator"].iloc[0] == "static"
        best = None if static else best_batch(group)
        on = experts_from(group)

        def cell(batch: int, column: str, digits: int, at=at, static=static) -> str:
            if batch not in at.index or (static and column == "ratio"):
                return ""
            return f"{at.loc[batch, column]:.{digits}f}"

        rows.append(
            {
                "Model": model,
                "Device": device,
                f"ms/image @{low}": cell(low, "ms_per_image", 2),
                f"ms/image @{high}": cell(high, "ms_per_image", 2),
                f"× @{low}": cell(low, "ratio", 3),
                f"× @{high}": cell(high, "ratio", 3),
                "Best batch (×)": "" if best is None else f"{best} ({at.loc[best, 'ratio']:.3f})",
                "Experts from": "" if on is None else str(on),
                "Noisy batches": ", ".join(str(b) for b in group[group["noisy"]]["batch"]),
            }
        )
    return pd.DataFrame(rows)
