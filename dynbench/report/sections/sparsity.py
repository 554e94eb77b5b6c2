"""Spatial DynConv's sparsity section: latency of the dense, masked and sparse executions
against mask density, the break-even density, and GPU throughput."""

from __future__ import annotations

import pandas as pd

from dynbench.report import figures
from dynbench.report.document import Block, Section, Table, decimals
from dynbench.report.mask_density import break_even_text, gpu_table, spatial_points

SPATIAL_NOTE = (
    "Spatial DynConv at controlled mask densities (no trained masks exist here: these are "
    "speed measurements, not accuracy claims). × = latency ratio to the dense execution of "
    "the same model, median of interleaved rounds with its 95% interval; MAdds × = the "
    "conditional MAdds (the released counter's convention) over those with every position "
    "active. Dense counters (fvcore, ptflops, torch) cannot see masks. Sparse runs each "
    "block at pixel granularity or at S x S tiles with their halo; under the default 'auto' "
    "each block times both on its masks and keeps the faster ('Blocks at' counts the choices)."
)


GPU_SPATIAL_HEADING = "GPU throughput of the three executions (images/s, CUDA events)"


def _ratio_cell(point) -> str:
    if point is None:
        return ""
    ci = f" [{point.low:.3f}, {point.high:.3f}]" if point.low is not None else ""
    return f"{point.ratio:.3f}{ci}" + (" (noisy)" if point.noisy else "")


def section(frame: pd.DataFrame) -> Section | None:
    points = spatial_points(frame)
    if points.empty:
        return None
    blocks = [Block(text=SPATIAL_NOTE)]
    figure = figures.spatial_density(points)
    if figure is not None:
        blocks.append(Block(heading=figure.title, text=figure.caption, figure=figure))
    bullets = []
    for (model, mask), group in points.groupby(["model", "mask"], sort=False):
        sparse = group[group["execution"] == "sparse"]
        if not sparse.empty:
            bullets.append(f"{model}, {mask} masks: break-even density {break_even_text(sparse)}")
    blocks.append(Block(heading="Break-even density", bullets=bullets))
    rows = []
    for (model, mask, density), group in points.groupby(["model", "mask", "density"], sort=False):
        by = {r.execution: r for r in group.itertuples()}
        rows.append(
            {
                "Model": model,
                "Mask": mask,
                "Density": f"{density:g}",
                "MAdds ×": decimals(group.iloc[0]["madds_vs_full"]),
                "Masked × [95% CI]": _ratio_cell(by.get("masked")),
                "Sparse × [95% CI]": _ratio_cell(by.get("sparse")),
                "Sparse ran": by["sparse"].impl if "sparse" in by else "",
                "Blocks at": by["sparse"].granularity if "sparse" in by else "",
            }
        )
    numeric = ("Density", "MAdds ×", "Masked × [95% CI]", "Sparse × [95% CI]")
    blocks.append(Block(table=Table(pd.DataFrame(rows), numeric)))
    gpu = gpu_table(frame)
    if not gpu.empty:
        numeric = ("Density", "Batch", *[c for c in gpu.columns if "/" in c])
        blocks.append(Block(heading=GPU_SPATIAL_HEADING, table=Table(gpu, numeric)))
    return Section("spatial", "Spatial DynConv: latency against mask density", blocks)
