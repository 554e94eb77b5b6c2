"""The report's plots (matplotlib): each an SVG for the HTML page and a PNG beside the markdown.

Each function takes the stored measurements and returns a :class:`Figure`, or None when
the store holds nothing it could show. Every plot has a title, axes with units, a legend
and a caption saying what to look at.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from dynbench.published import parse_printed  # noqa: E402
from dynbench.report.claims import load_claims  # noqa: E402
from dynbench.report.data import ci95_bounds, family_of, latest  # noqa: E402
from dynbench.report.published_sizes import compare_published  # noqa: E402
from dynbench.results.names import COUNTERS  # noqa: E402

MARKERS = {
    "condconv": "s",
    "dyconv": "^",
    "dcd": "D",
    "odconv": "o",
    "se": "v",
    "cbam": "<",
    "eca": ">",
    "cgc": "P",
    "static": "x",
    "user": "*",
}


CLAIM_FAMILIES = ("resnet18", "resnet50_v1", "mobilenetv2_100")
VARIANT_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


def _variant(model: str) -> str:
    """'resnet18_odconv_4x' -> 'odconv_4x': the operator and its setting, without family."""
    family = family_of(model)[0]
    return model[len(family) + 1 :] if model.startswith(family + "_") else model


@dataclass(frozen=True)
class Figure:
    name: str  # file stem: NAME.png beside the markdown
    title: str
    caption: str
    svg: str
    png: bytes


def render(fig, name: str, title: str, caption: str) -> Figure:
    """A matplotlib figure as a report :class:`Figure` (SVG for the HTML page, PNG for
    the markdown), closed once drawn."""
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    svg, png = io.StringIO(), io.BytesIO()
    fig.savefig(svg, format="svg")
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    text = svg.getvalue()
    return Figure(name, title, caption, text[text.index("<svg") :], png.getvalue())


def _ratios(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = frame[frame["metric"] == metric]
    bounds = [ci95_bounds(r) for r in rows.itertuples(index=False)]
    return rows.assign(
        low=[b[0] for b in bounds],
        high=[b[1] for b in bounds],
        operator=[family_of(m)[1] for m in rows["model"]],
    )


def madds_vs_latency(frame: pd.DataFrame) -> Figure | None:
    """(a) MAdds overhead against latency overhead per variant, with y = x."""
    values = latest(frame)
    ratios = _ratios(values, "latency_ratio")
    madds = values[(values["metric"] == "madds") & (values["method"] == "analytic")]
    madds = dict(zip(madds["model"], madds["value"], strict=False))
    points = []
    for r in ratios.itertuples(index=False):
        base = family_of(r.model)[0]
        if r.model in madds and base in madds:
            points.append((r.operator, 100 * (madds[r.model] / madds[base] - 1), r))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    top = max(max(p[1] for p in points), max(100 * (p[2].value - 1) for p in points)) * 1.1
    ax.plot([0, top], [0, top], color="#999", linestyle="--", label="y = x (time follows MAdds)")
    # one colour and marker per variant (ODConv 1x and 4x apart), whatever the family
    variants = sorted({_variant(p[2].model) for p in points})
    for k, variant in enumerate(variants):
        mine = [p for p in points if _variant(p[2].model) == variant]
        xs = [p[1] for p in mine]
        ys = [100 * (p[2].value - 1) for p in mine]
        errors = [
            [100 * (p[2].value - p[2].low) if p[2].low else 0 for p in mine],
            [100 * (p[2].high - p[2].value) if p[2].high else 0 for p in mine],
        ]
        ax.errorbar(xs, ys, yerr=errors, fmt=VARIANT_MARKERS[k % len(VARIANT_MARKERS)],
                    label=variant, capsize=2)  # fmt: skip
    ax.set_xlabel("analytic MAdds overhead over the family baseline (%)")
    ax.set_ylabel("CPU latency overhead, batch 1 (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return render(
        fig,
        "madds-vs-latency",
        "MAdds overhead against measured latency overhead",
        "Points far above the dashed line pay in time what MAdds do not show: the weight "
        "reads and small ops of the attention branches.",
    )


def published_vs_measured(frame: pd.DataFrame) -> Figure | None:
    """(b) Printed params and MAdds against ours, per published row with a model."""
    compared = compare_published(frame)
    if compared.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.4))
    pairs = (
        ("params", "params_pub", "params_as_printed", "parameters (millions)", 1e6),
        ("MAdds", "madds_pub", "madds_analytic", "multiply-adds (billions)", 1e9),
    )
    for ax, (what, printed_col, measured_col, unit, scale) in zip(axes, pairs, strict=True):
        printed = [parse_printed(t)[0] for t in compared[printed_col]]
        data = [
            (p / scale, m / scale)
            for p, m in zip(printed, compared[measured_col], strict=True)
            if p is not None and m is not None and not pd.isna(m)
        ]
        if not data:
            ax.set_visible(False)
            continue
        # log axes: the rows span two decades, and a 26% miss must show at either end
        low, top = min(min(d) for d in data) / 1.2, max(max(d) for d in data) * 1.2
        ax.plot([low, top], [low, top], color="#999", linestyle="--", label="measured = printed")
        ax.scatter([d[0] for d in data], [d[1] for d in data], s=14, label="published row")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"printed {unit}")
        ax.set_ylabel(f"measured {unit}")
        ax.set_title(what, fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return render(
        fig,
        "published-vs-measured",
        "Published against measured params (in each table section's convention) and MAdds "
        "(analytic)",
        "Points on the dashed line are reproduced; the reproduction matrix below says which "
        "are within the printed digit.",
    )


def counter_totals(frame: pd.DataFrame, limit: int = 24) -> Figure | None:
    """(c) Each counter's total per model, relative to conv+FC."""
    values = latest(frame)
    madds = values[values["metric"] == "madds"].pivot_table(
        index="model", columns="method", values="value", aggfunc="last"
    )
    if madds.empty or "conv_linear" not in madds:
        return None
    madds = madds.dropna(subset=["conv_linear"])
    # the families the claims are about first, then the rest by name
    claims = load_claims()
    named = set(claims["model"]) | set(claims["reference"])
    claimed = [m for m in madds.index if m in named]
    near = [m for m in madds.index if family_of(m)[0] in CLAIM_FAMILIES and m not in named]
    rest = [m for m in madds.index if m not in claimed and m not in near]
    madds = madds.loc[(claimed + near + rest)[:limit]]
    fig, ax = plt.subplots(figsize=(9.6, 0.28 * len(madds) + 1.6))
    counters = [c for c in COUNTERS if c in madds]
    height = 0.8 / len(counters)
    for i, counter in enumerate(counters):
        positions = [y + i * height for y in range(len(madds))]
        ax.barh(positions, madds[counter] / madds["conv_linear"], height=height, label=counter)
    ax.set_yticks([y + 0.4 - height / 2 for y in range(len(madds))])
    ax.set_yticklabels(madds.index, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="#999", linestyle="--")
    shares = madds[counters].div(madds["conv_linear"], axis=0)
    ax.set_xlim(max(0.0, float(shares.min().min()) - 0.05), float(shares.max().max()) + 0.05)
    ax.set_xlabel("counter's total / conv+FC MAdds (×)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    return render(
        fig,
        "counter-totals",
        f"What each MAdds counter counts, relative to conv+FC (up to {limit} models)",
        "A bar left of 1 means the counter misses layers (ptflops and torch skip ops they "
        "have no formula for); right of 1, it also counts norms, pooling or aggregation.",
    )


def timing_ratios(
    frame: pd.DataFrame, metric: str, published: dict[str, list[tuple[float, str]]]
) -> Figure | None:
    """(d) and (f): a ratio with its interval per model, each claim's printed ratio marked
    with its own marker (a model may carry two claims: DCD's time and ODConv's table)."""
    ratios = _ratios(latest(frame), metric).sort_values("value")
    if ratios.empty:
        return None
    fig, ax = plt.subplots(figsize=(8.0, 0.34 * len(ratios) + 1.6))
    ys = range(len(ratios))
    lows = [r.value - r.low if r.low else 0 for r in ratios.itertuples()]
    highs = [r.high - r.value if r.high else 0 for r in ratios.itertuples()]
    ax.errorbar(
        ratios["value"], ys, xerr=[lows, highs], fmt="o", capsize=3, label="measured, 95% CI"
    )
    by_label: dict[str, list[tuple[int, float]]] = {}
    for y, model in zip(ys, ratios["model"], strict=False):
        for value, label in published.get(model, []):
            by_label.setdefault(label, []).append((y, value))
    for (label, points), (marker, colour) in zip(
        sorted(by_label.items()),
        [("x", "#c0392b"), ("D", "#8e44ad"), ("^", "#d35400")],
        strict=False,
    ):
        ax.scatter([p[1] for p in points], [p[0] for p in points], marker=marker, s=50,
                   color=colour, label=f"printed: {label}", zorder=3)  # fmt: skip
    ax.set_yticks(list(ys))
    ax.set_yticklabels(ratios["model"], fontsize=8)
    ax.axvline(1.0, color="#999", linestyle="--")
    what = "CPU latency, batch 1" if metric == "latency_ratio" else "training step"
    ax.set_xlabel(f"{what}: × family baseline")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    name = "latency-ratios" if metric == "latency_ratio" else "train-step-ratios"
    title = "Latency ratio per model" if metric == "latency_ratio" else "Training-step ratio"
    return render(
        fig,
        name,
        title,
        "Each claim's printed ratio has its own marker; where it lies left of a model's "
        "interval, the model is costlier on this machine than that claim says.",
    )


def gpu_throughput(frame: pd.DataFrame) -> Figure | None:
    """(e) GPU images/s and peak memory per model, when the throughput suite ran."""
    values = latest(frame)
    speed = values[values["metric"] == "gpu_images_per_s"].dropna(subset=["value"])
    if speed.empty:
        return None
    memory = values[values["metric"] == "gpu_peak_memory"].set_index("model")["value"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 0.3 * len(speed) + 1.8), sharey=True)
    left.barh(speed["model"], speed["value"], label="images/s")
    right.barh(speed["model"], memory.reindex(speed["model"]).values / 2**30, color="#e67e22",
               label="peak memory")  # fmt: skip
    left.set_xlabel("images / s at the suite's batch")
    right.set_xlabel("peak GPU memory (GiB)")
    for ax in (left, right):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    left.tick_params(axis="y", labelsize=8)
    return render(
        fig,
        "gpu-throughput",
        "GPU throughput and peak memory",
        "Per-sample kernels grow with the batch: compare each model's memory with its baseline's.",
    )


def spatial_density(points: pd.DataFrame) -> Figure | None:
    """Latency ratio to dense of the masked and sparse executions, and the MAdds the masks
    leave, against mask density; one panel per mask source, the break-even marked."""
    from dynbench.report.mask_density import break_even

    if points.empty:
        return None
    models = list(dict.fromkeys(points["model"]))
    masks = list(dict.fromkeys(points["mask"]))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(masks), figsize=(4.8 * len(masks), 4.6), squeeze=False)
    for ax, mask in zip(axes[0], masks, strict=True):
        for k, model in enumerate(models):
            colour = colours[k % len(colours)]
            mine = points[(points["mask"] == mask) & (points["model"] == model)]
            for execution, style in (("masked", "s:"), ("sparse", "o-")):
                line = mine[mine["execution"] == execution].sort_values("density")
                if line.empty:
                    continue
                ax.plot(line["density"], line["ratio"], style, color=colour,
                        label=f"{model}: {execution} / dense")  # fmt: skip
                ax.fill_between(line["density"], line["low"], line["high"], alpha=0.2,
                                color=colour)  # fmt: skip
                if execution == "sparse":
                    crossing = break_even(line)
                    if isinstance(crossing, float):
                        ax.axvline(crossing, color=colour, linestyle=":", linewidth=1)
        madds = points[(points["mask"] == mask) & (points["execution"] == "sparse")]
        madds = madds[madds["model"] == models[0]].sort_values("density")
        ax.plot(madds["density"], madds["madds_vs_full"], "--", color="#7f8c8d",
                label="MAdds / all positions")  # fmt: skip
        ax.axhline(1.0, color="#999", linewidth=0.8)
        ax.set_title(f"{mask} masks", fontsize=10)
        ax.set_xlabel("mask density (fraction of positions computed)")
        ax.set_ylabel("× dense latency, batch 1, one thread")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    names = ", ".join(models)
    return render(
        fig,
        "spatial-density",
        f"{names}: latency and MAdds against mask density",
        "One colour per model; shaded: 95% intervals; a dotted vertical line marks a model's "
        "break-even density, where its sparse line crosses 1. The gap between a sparse line "
        "and the MAdds line is what gathering and scattering cost.",
    )


def batch_sweep(points: pd.DataFrame) -> Figure | None:
    """Per-image latency (top) and ratio to the baseline (bottom) against batch, one
    column per family and device; the best batch starred, experts-route points ringed."""
    if points.empty:
        return None
    groups = list(points.groupby(["device", "family"], sort=True))
    fig, axes = plt.subplots(
        2, len(groups), figsize=(4.8 * len(groups), 7.2), squeeze=False, sharex=True
    )
    for column, ((device, family), group) in enumerate(groups):
        top, bottom = axes[0][column], axes[1][column]
        for model, line in group.groupby("model", sort=False):
            line = line.sort_values("batch")
            operator = line["operator"].iloc[0]
            marker = MARKERS.get(operator, "o")
            drawn = top.plot(line["batch"], line["ms_per_image"], marker=marker, label=model)
            color = drawn[0].get_color()
            experts = line[line["experts"]]
            for ax, column_name in ((top, "ms_per_image"), (bottom, "ratio")):
                ax.scatter(
                    experts["batch"],
                    experts[column_name],
                    s=140,
                    facecolors="none",
                    edgecolors=color,
                    linewidths=1.5,
                )
            if operator == "static":
                continue
            lows = (line["ratio"] - line["low"]).where(line["low"].notna(), 0)
            highs = (line["high"] - line["ratio"]).where(line["high"].notna(), 0)
            bottom.errorbar(line["batch"], line["ratio"], yerr=[lows, highs], marker=marker,
                            color=color, capsize=2)  # fmt: skip
            best = line.loc[line["ratio"].idxmin()]
            bottom.scatter(
                [best["batch"]],
                [best["ratio"]],
                marker="*",
                s=220,
                color=color,
                edgecolors="black",
                zorder=3,
            )
        bottom.axhline(1.0, color="#999", linestyle="--")
        top.set_title(f"{family} ({device})", fontsize=10)
        top.set_ylabel("latency per image (ms)")
        bottom.set_ylabel("× family baseline, same batch")
        bottom.set_xlabel("batch")
        batches = sorted(group["batch"].unique())
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
        handles, _ = top.get_legend_handles_labels()
        handles += [
            Line2D([], [], marker="*", linestyle="", markersize=12, color="#555",
                   markeredgecolor="black", label="best batch (smallest ratio)"),
            Line2D([], [], marker="o", linestyle="", markersize=11, markerfacecolor="none",
                   color="#555", label="experts route at this batch"),
        ]  # fmt: skip
        top.legend(handles=handles, fontsize=7)
    return render(
        fig,
        "batch-sweep",
        "Latency per image against batch",
        "Top: median latency per image at each batch. Bottom: each variant's ratio to its "
        "static baseline at the same batch; the star marks its best batch (smallest ratio), "
        "a ring marks a batch at which some of its layers ran the experts route (the K "
        "kernels as one dense conv over the batch, chosen by shape).",
    )
