"""The report: the claims scorecard first, then the plots, the timings with their quality,
the reproduction matrix and the sizes; as markdown (PNG plots and CSV tables beside it)
and as one self-contained HTML page (inline CSS, SVG and a few lines of script)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import escape

from dynbench.errors import DynbenchError
from dynbench.report import figures
from dynbench.report.answer import conclusion
from dynbench.report.batches import sweep_points, sweep_table
from dynbench.report.claims import (
    FAILS,
    HOLDS,
    MADDS_ONLY,
    UNMEASURED,
    VERDICT_RULES,
    load_claims,
    paper_of,
    scorecard,
    tally,
)
from dynbench.report.data import (
    DEFAULT_OPTIONS,
    TIMING_SECTIONS,
    ci95_bounds,
    ci95_text,
    family_of,
    field_dict,
    judged_setting,
    latest,
    latest_by_options,
    options_text,
    papers_setting,
    size_table,
    timing_table,
)
from dynbench.report.figures import Figure
from dynbench.report.floor import FLOOR_NOTE, ceilings, floor_table, latency_vs_floor, layer_table
from dynbench.report.machines import machine_of, split_by_machine
from dynbench.report.matrix import overall_counts, reproduction_matrix
from dynbench.report.published_speeds import compare_published_speed
from dynbench.report.quality import RULES, section_quality
from dynbench.report.reference import beside_reference, reference_line
from dynbench.report.resolution import resolution_table
from dynbench.report.spatial import break_even_text, gpu_table, spatial_points
from dynbench.report.user_operator import user_operator_section
from dynbench.results.names import SIZE_METRICS, unit_of

MAX_MARKDOWN_COLUMNS = 10
# what a model's size claims use: the same on every machine
MACHINE_FREE_METRICS = (*SIZE_METRICS, "weight_bytes_per_image")
FORMATS = ("md", "html", "both")


@dataclass
class Table:
    """A table as shown: formatted strings, which columns are numbers, and where a wider
    version of it is written (a CSV beside the report)."""

    frame: pd.DataFrame
    numeric: tuple[str, ...] = ()
    csv_name: str = ""
    csv: pd.DataFrame | None = None
    # HTML only: a column whose cells open to a longer text (the claim's sentence), and
    # whether the table becomes one card per row on a narrow screen
    details: dict[str, list[str]] = field(default_factory=dict)
    cards: bool = False


@dataclass
class Block:
    heading: str = ""
    text: str = ""
    bullets: list[str] = field(default_factory=list)
    table: Table | None = None
    footnotes: list[str] = field(default_factory=list)
    figure: Figure | None = None


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    environment: dict
    sections: list[Section] = field(default_factory=list)
    # the scorecard of the machine the answer is about, its name, and the other machines'
    # tallies: what the terminal and the first screen say before any table
    card: pd.DataFrame | None = None
    machine: str = ""
    others: list[str] = field(default_factory=list)


def _count(value: object) -> str:
    return "" if value is None or pd.isna(value) else f"{int(value):,}"


def _times(value: object, digits: int = 3) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


SCORECARD_COLUMNS = (
    "Claim",
    "Paper",
    "Verdict",
    "Deciding",
    "Printed",
    "Why",
    "Params ×",
    "MAdds overhead (conv+FC / analytic)",
    "GPU throughput ×",
)


def _scorecard_section(card: pd.DataFrame, set_aside: int = 0) -> Section:
    """The claims as judged (``card``); ``set_aside``: records left out of the judgment
    because they ran in another setting than the papers' (:func:`judged_setting`). The table
    holds the claims this store measures; the others collapse into one line per command that would
    measure them (claims.csv beside the report lists every claim)."""
    every = card
    card = card[card["Verdict"] != UNMEASURED]
    shown = card[list(SCORECARD_COLUMNS)].copy()
    for column in ("Params ×", "GPU throughput ×"):
        shown[column] = shown[column].map(lambda v: _times(v, 2))
    numeric = ("Params ×", "MAdds overhead (conv+FC / analytic)", "GPU throughput ×")
    missing = every[every["measured_by"] != ""]
    longer = [
        f"{len(group)} claim(s): {command}"
        for command, group in missing.groupby("measured_by", sort=False)
    ]
    blocks = [Block(text=f"{len(every)} claims: {tally(every)}.")]
    if not card.empty:
        table = Table(
            shown,
            numeric,
            "claims.csv",
            every.drop(columns=["measured_by"]),
            details={"Claim": list(card["Sentence"])},
            cards=True,
        )
        blocks.append(Block(table=table))
    if set_aside:
        blocks.append(
            Block(
                text=f"{set_aside} record(s) taken in another setting than the papers' (GPU "
                "throughput in another dtype or layout or compiled, or any measurement at "
                "another input size than the model's own) are shown but judge no claim: the "
                "papers timed eager fp32 at each model's own input size."
            )
        )
    if longer:
        blocks.append(
            Block(
                heading="What a longer run would add",
                text="Claims not measured in this store, and the command that measures them:",
                bullets=longer,
            )
        )
    blocks.append(Block(heading="Verdict rules", bullets=verdict_rules()))
    return Section("claims", "Claims scorecard", blocks)


def verdict_rules() -> list[str]:
    return [f"{name}: {rule}" for name, rule in VERDICT_RULES] + [RULES]


def _figures_section(frame: pd.DataFrame) -> Section | None:
    claims = load_claims()
    printed_cpu: dict[str, list[tuple[float, str]]] = {}
    printed_train: dict[str, list[tuple[float, str]]] = {}
    for claim in claims.itertuples(index=False):
        label = f"{paper_of(claim)} {'speed table' if claim.kind == 'speed' else claim.kind}"
        if claim.kind in ("speed", "time"):
            printed_cpu.setdefault(claim.model, []).append((claim.printed_ratio, label))
        if claim.kind == "train":
            printed_train.setdefault(claim.model, []).append((claim.printed_ratio, label))
    made = [
        figures.madds_vs_latency(frame),
        figures.published_vs_measured(frame),
        figures.counter_totals(frame),
        figures.timing_ratios(frame, "latency_ratio", printed_cpu),
        figures.gpu_throughput(frame),
        figures.timing_ratios(frame, "train_step_ratio", printed_train),
    ]
    blocks = [Block(heading=f.title, text=f.caption, figure=f) for f in made if f is not None]
    if not blocks:
        return None
    absent = len(made) - len(blocks)
    if absent:
        blocks.append(Block(text=f"{absent} plot(s) left out: this store has no data for them."))
    return Section("plots", "Plots", blocks)


def _timing_sections(frame: pd.DataFrame) -> list[Section]:
    values = latest(frame)
    sections = []
    for metric, ratio, title, note in TIMING_SECTIONS:
        times = values[values["metric"] == metric]
        if times.empty:
            continue
        table = timing_table(values, metric, ratio)
        unit = unit_of(metric)
        digits = {unit: 2, "IQR %": 1, "Faults / call": 1, "× baseline": 3}
        for column, places in digits.items():
            table[column] = table[column].map(lambda v, n=places: _times(v, n))
        numeric = tuple(digits)
        blocks = [
            Block(text=section_quality(times)),
            Block(text=note, table=Table(table, numeric)),
        ]
        sections.append(Section(metric.split("_")[0].replace("train", "train-step"), title, blocks))
    return sections


def _floor_section(frame: pd.DataFrame, sizes: pd.DataFrame) -> Section | None:
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
            "Floor ms": table["floor_ms"].map(lambda v: _times(v, 2)),
            "Latency ms": table["latency_ms"].map(lambda v: _times(v, 2)),
            "Latency / floor": table["latency_over_floor"].map(lambda v: _times(v, 2)),
            "Floor overhead ms": table.get("floor_overhead_ms", pd.Series(dtype=float)).map(
                lambda v: _times(v, 2)
            ),
            "Overhead ms [95% CI]": [_overhead_cell(r) for r in table.itertuples(index=False)],
            "Floor explains": table.get("floor_explains", pd.Series(dtype=float)).map(
                lambda v: "" if pd.isna(v) else f"{100 * v:.0f}%"
            ),
            "Overhead / floor's": table.get("overhead_over_floor", pd.Series(dtype=float)).map(
                lambda v: _times(v, 2)
            ),
            "… at base efficiency": table.get(
                "overhead_over_scaled_floor", pd.Series(dtype=float)
            ).map(lambda v: _times(v, 2)),
        }
    )
    numeric = tuple(shown.columns[1:])
    layers = layer_table(with_layers, limits)
    where = pd.DataFrame({"Model": table["model"]})
    for kind in ("memory", "compute"):
        mine = layers[layers["bound"] == kind].groupby("model")["floor_ms"]
        where[f"{kind.title()}-bound layers"] = where["Model"].map(mine.count()).fillna(0)
        where[f"Their floor ms ({kind})"] = (
            where["Model"].map(mine.sum()).map(lambda v: _times(v, 2) if not pd.isna(v) else "0.00")
        )
        where[f"{kind.title()}-bound layers"] = where[f"{kind.title()}-bound layers"].map(_count)
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


BATCH_NOTE = (
    "Latency per image (ms) at each batch size, from the batch-sweep suite: at each batch "
    "the family is timed interleaved as in the latency suite (median of shuffled rounds, "
    "torch.utils.benchmark), on every CPU core or on the GPU. × = median of the per-round "
    "ratios to the static baseline at the same batch. Best batch = the batch at which a "
    "variant's ratio is smallest (its overhead least); experts from = the smallest batch at "
    "which some of its layers ran the experts route (fast/experts: the K kernels as one dense "
    "conv over the batch, outputs mixed per sample, chosen from shapes by "
    "dynbench.ops.base.experts_pay) instead of forming a kernel per sample (fast/mixed). "
    "Every point, with its interval and implementation, is in batch-sweep.csv."
)


def _batch_section(frame: pd.DataFrame) -> Section | None:
    points = sweep_points(frame)
    if points.empty:
        return None
    times = frame[frame["metric"] == "batch_latency_ms"]
    blocks = [Block(text=section_quality(times)), Block(text=BATCH_NOTE)]
    figure = figures.batch_sweep(points)
    if figure is not None:
        blocks.append(Block(heading=figure.title, text=figure.caption, figure=figure))
    table = sweep_table(points)
    numeric = tuple(c for c in table.columns if c.startswith(("ms/", "×", "Best", "Experts")))
    csv = points.drop(columns=["experts"]).round(5)
    blocks.append(Block(table=Table(table, numeric, "batch-sweep.csv", csv)))
    return Section("batch-sweep", "Latency per image against batch", blocks)


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


def _spatial_section(frame: pd.DataFrame) -> Section | None:
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
                "MAdds ×": _times(group.iloc[0]["madds_vs_full"]),
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


def _resolution_section(frame: pd.DataFrame) -> Section | None:
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


def _speed_section(frame: pd.DataFrame) -> Section | None:
    speed = compare_published_speed(frame)
    if speed.empty:
        return None
    shown = speed.rename(
        columns={
            "source": "Source",
            "table": "Table",
            "model": "Model",
            "hardware": "Paper's hardware",
            "printed": "Printed",
            "printed_ratio": "Printed ×",
            "measured": "Measured",
            "measured_ratio": "Measured ×",
            "ci95": "95% CI",
            "verdict": "Verdict",
        }
    )
    for column in ("Printed ×", "Measured ×"):
        shown[column] = shown[column].map(_times)
    note = (
        "Each published speed figure beside this machine's timing of the same model. The papers "
        "timed other hardware, so only the slowdown over the static baseline is compared. "
        "Verdict: as printed = the printed ratio lies in our interval; costlier / cheaper here "
        "= the dynamic model costs more / less, relative to its baseline, here; inconclusive "
        "(noisy) = the timing may not decide (see the verdict rules)."
    )
    return Section(
        "speed",
        "Published speed versus measured",
        [Block(text=note, table=Table(shown, ("Printed ×", "Measured ×")))],
    )


def _matrix_section(frame: pd.DataFrame) -> Section | None:
    tables, conflicts = reproduction_matrix(frame)
    if not tables:
        return None
    blocks = [
        Block(
            text="Each seed table: how many printed figures are reproduced (✓ to the printed "
            "digit, half-up rounding; ≈ one unit off in the last digit; ✗ not), for params and "
            "for each MAdds counter, then its rows. Δ% = (measured - printed) / printed. Notes "
            "are numbered under each table; conflicts between the papers are listed once, at "
            "the end."
        )
    ]
    overall = overall_counts(tables).astype({"✓": str, "≈": str, "✗": str})
    overall["Reproduced %"] = overall["Reproduced %"].map(lambda v: _times(v, 1))
    blocks.append(
        Block(
            heading="All seed tables",
            text="The counts below summed over every table; reproduced = (✓ + ≈) / compared.",
            table=Table(overall, ("✓", "≈", "✗", "Reproduced %")),
        )
    )
    for seed in tables:
        counts = Table(seed.counts.astype({"✓": str, "≈": str, "✗": str}), ("✓", "≈", "✗"))
        blocks.append(Block(heading=seed.title, table=counts))
        rows = seed.rows.copy()
        for column in ("Params Δ%", "MAdds Δ% (analytic)", "MAdds Δ% (conv+FC)"):
            rows[column] = rows[column].map(lambda v: _times(v, 2))
        numeric = ("Params Δ%", "MAdds Δ% (analytic)", "MAdds Δ% (conv+FC)")
        blocks.append(Block(table=Table(rows, numeric), footnotes=seed.footnotes))
    if conflicts:
        blocks.append(Block(heading="Conflicts between the papers", bullets=conflicts))
    return Section("reproduction", "Reproduction matrix", blocks)


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


def _sizes_section(frame: pd.DataFrame) -> Section | None:
    sizes = size_table(frame)
    if sizes.empty:
        return None
    shown = sizes[[c for c in SIZE_COLUMNS if c in sizes]].rename(columns=SIZE_COLUMNS)
    for column in ("Params", "MAdds (conv+FC)", "MAdds (analytic)"):
        if column in shown:
            shown[column] = shown[column].map(_count)
    for column in ("Params ×", "MAdds × (conv+FC)"):
        if column in shown:
            shown[column] = shown[column].map(_times)
    numeric = ("Params", "Params ×", "MAdds (conv+FC)", "MAdds (analytic)", "MAdds × (conv+FC)")
    note = (
        "Params in parameters; MAdds = multiply-adds at batch 1 (fvcore's unit; torch's FLOPs "
        "halved). conv+FC counts convolution and fully connected layers only; analytic adds "
        "each operator's kernel aggregation and attention-times-feature multiplies. × = ratio "
        "to the family's static baseline. Every counter's total is in sizes.csv."
    )
    table = Table(shown, numeric, "sizes.csv", sizes)
    return Section("sizes", "Params and MAdds", [Block(text=note, table=table)])


def build_report(frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> Report:
    """The report of ``frame``; records of several machines are judged machine by machine;
    with ``reference`` (another machine's records), a section sets its figures beside."""
    report = _build_report(frame)
    if reference is not None:
        table, name = beside_reference(frame, reference)
        text = (
            f"The same claims on the reference machine, {name} (the committed runs shipped "
            "with dynbench), judged by the same rules. Beyond noise = the two newest runs' "
            "95% intervals do not overlap and the ratios are more than 3% apart."
        )
        blocks = [Block(text=text)]
        if not table.empty:
            blocks.append(Block(table=Table(table, ("Difference",))))
        report.sections.insert(1, Section("reference", "Beside the reference machine", blocks))
        report.others.append(reference_line(table, name))
    return report


def _build_report(frame: pd.DataFrame) -> Report:
    machines = split_by_machine(frame)
    newest = frame.sort_values("measured_at", kind="stable") if "measured_at" in frame else frame
    env = json.loads(newest["environment"].iloc[-1]) if "environment" in frame else {}
    timed = latest_by_options(frame) if "settings" in frame else pd.DataFrame()
    if not timed.empty:
        env["options"] = sorted(set(timed["options"]), key=lambda o: (o != DEFAULT_OPTIONS, o))
    if len(machines) > 1:
        return _machines_report(frame, machines, env)
    report = Report("dynbench report", env)
    papers = papers_setting(frame)
    judged = judged_setting(frame)
    report.card = scorecard(judged)
    report.machine = machines[0][0] if machines else ""
    claims = _scorecard_section(report.card, len(papers) - len(judged))
    measured = (report.card["Verdict"] != UNMEASURED).any()
    if measured:
        report.sections.append(claims)
    for section in (
        _figures_section(papers),
        *_machine_sections(frame, frame),
        *_size_sections(frame),
    ):
        if section is not None:
            report.sections.append(section)
    if not measured:  # a suite that judges no claim leads with its own result
        report.sections.append(claims)
    return report


def _machine_sections(group: pd.DataFrame, frame: pd.DataFrame) -> list[Section | None]:
    """The sections whose figures depend on the machine, from one machine's ``group``
    (``frame``: every record, for the sizes the floor section sets beside them)."""
    papers = papers_setting(group)
    return [
        *_timing_sections(papers),
        _floor_section(papers, frame),
        _options_section(group),
        _batch_section(papers),
        _spatial_section(papers),
        _speed_section(judged_setting(group)),
        user_operator_section(papers),
    ]


def _size_sections(frame: pd.DataFrame) -> list[Section | None]:
    """The sections of sizes and MAdds, the same on every machine."""
    papers = papers_setting(frame)
    return [_resolution_section(papers), _matrix_section(papers), _sizes_section(papers)]


def _machines_report(
    frame: pd.DataFrame, machines: list[tuple[str, pd.DataFrame]], env: dict
) -> Report:
    """One column group per machine in the scorecard, each machine's timings on their own;
    sizes and MAdds do not depend on the machine and are shown once."""
    env = {**env, "machines": [_machine_text(name, group) for name, group in machines]}
    report = Report("dynbench report", env)
    section, cards = _machines_scorecard(machines, frame)
    report.sections.append(section)
    # The machine holding most records: a short run on a second machine (a few GPU
    # figures) must not take the plots of the one that measured nearly everything.
    main_name, main = max(machines, key=lambda m: len(m[1]))
    report.card, report.machine = cards[main_name], main_name
    report.others = [f"{name}: {tally(card)}" for name, card in cards.items() if name != main_name]
    plots = _figures_section(papers_setting(main))
    if plots is not None:
        plots.title += f" ({main_name})"
        plots.blocks.insert(
            0,
            Block(
                text=f"Plots of {main_name}, the machine with the most measurements; "
                "'dynbench report --machine NAME' draws another's."
            ),
        )
        report.sections.append(plots)
    for k, (name, group) in enumerate(machines, 1):
        for section in _machine_sections(group, frame):
            if section is not None:
                section.id += f"-m{k}"
                section.title += f" ({name})"
                report.sections.append(section)
    report.sections += [s for s in _size_sections(frame) if s is not None]
    return report


def _machine_text(name: str, group: pd.DataFrame) -> str:
    newest = group.sort_values("measured_at", kind="stable") if "measured_at" in group else group
    env = field_dict(newest["environment"].iloc[-1])
    machine = machine_of(env)
    hardware = ", ".join(p for p in (machine.cpu, machine.gpu) if p)
    return f"{name} ({hardware}; {_build_text(env)}; fingerprint {machine.fingerprint})"


def _build_text(env: dict) -> str:
    """torch, commit and date of a machine's newest record."""
    parts = [f"torch {env['torch']}" if env.get("torch") else ""]
    parts.append(f"commit {env['git_commit']}" if env.get("git_commit") else "")
    parts.append(str(env.get("timestamp", ""))[:10])
    return ", ".join(p for p in parts if p)


def _machines_scorecard(
    machines: list[tuple[str, pd.DataFrame]], frame: pd.DataFrame
) -> tuple[Section, dict[str, pd.DataFrame]]:
    """Each claim judged on each machine: a verdict per machine, and its CPU latency ratio
    where the table has room (markdown tables stop at 10 columns). Sizes do not depend on
    the machine, so every machine's claims see the sizes any machine measured."""
    sizes = frame[frame["metric"].isin(MACHINE_FREE_METRICS)]
    with_latency = 1 + 2 * len(machines) <= MAX_MARKDOWN_COLUMNS
    if 1 + len(machines) > MAX_MARKDOWN_COLUMNS:
        raise DynbenchError(
            f"the records come from {len(machines)} machines, more than one report shows side "
            "by side (9); choose one with --machine, or report fewer stores"
        )
    table = None
    cards = []
    for name, group in machines:
        timed = group[~group["metric"].isin(MACHINE_FREE_METRICS)]
        card = scorecard(judged_setting(pd.concat([sizes, timed], ignore_index=True)))
        cards.append((name, card))
        if table is None:
            table = card[["Claim", "Paper", "Printed"]].copy()
            sentences = list(card["Sentence"])
        table[f"Verdict ({name})"] = card["Verdict"]
        if with_latency:
            measured = card["Verdict"] != UNMEASURED
            table[f"Deciding ({name})"] = card["Deciding"].where(measured, "")
    summary = "; ".join(f"{name}: {tally(card)}" for name, card in cards)
    blocks = [
        Block(
            text=f"{len(table)} claims judged on each of {len(machines)} machines "
            f"(one column group per machine). {summary}."
        ),
        Block(table=Table(table, details={"Claim": sentences}, cards=True)),
    ]
    for name, card in cards:
        measured = card[card["Verdict"] != UNMEASURED]
        if not measured.empty:
            why = measured[["Claim", "Verdict", "Why"]]
            blocks.append(Block(heading=f"Why, on {name}", table=Table(why)))
    blocks.append(Block(heading="Verdict rules", bullets=verdict_rules()))
    return Section("claims", "Claims scorecard", blocks), dict(cards)


OPTIONS_NOTE = (
    "The latency suite with other options than the papers' setting (eager PyTorch, fp32, one "
    "thread): each cell is the median latency and the ratio to the family baseline timed "
    "with the same options, with its 95% interval. The scorecard judges the claims on the "
    "papers' setting only; set side by side, the eager and compiled ratios show whether a "
    "compiler narrows (or widens) the cost of dynamic per-sample kernels."
)


def _options_section(frame: pd.DataFrame) -> Section | None:
    """Latency per model and option set (compile, dtype, layout, threads), side by side,
    and the models that failed to compile, with the compiler's reason."""
    timed = latest_by_options(frame)
    failed = frame[(frame["metric"] == "error") & (frame["method"] == "compile")]
    if (timed.empty or set(timed["options"]) == {DEFAULT_OPTIONS}) and failed.empty:
        return None
    blocks = [Block(text=OPTIONS_NOTE)]
    if not timed.empty:
        cells: dict[tuple[str, str], str] = {}
        for r in timed[timed["metric"] == "latency_ms"].itertuples(index=False):
            ratio = timed[
                (timed["model"] == r.model)
                & (timed["options"] == r.options)
                & (timed["metric"] == "latency_ratio")
            ]
            text = f"{r.value:.2f} ms"
            if not ratio.empty:
                row = ratio.iloc[-1]
                ci = ci95_text(*ci95_bounds(row["detail"]))
                text += f", {row['value']:.3f}× {ci}".rstrip()
            compile_s = field_dict(r.detail).get("compile_s")
            if compile_s is not None:
                text += f" (compiled in {compile_s:.1f} s)"
            cells[(r.model, r.options)] = text
        options = sorted(set(timed["options"]), key=lambda o: (o != DEFAULT_OPTIONS, o))
        options = options[: MAX_MARKDOWN_COLUMNS - 1]
        models = sorted({m for m, _ in cells}, key=lambda m: (family_of(m)[0], m))
        rows = [{"Model": m, **{o: cells.get((m, o), "") for o in options}} for m in models]
        blocks.append(Block(table=Table(pd.DataFrame(rows), tuple(options))))
    if not failed.empty:
        bullets = [
            f"{r.model} ({options_text(r.settings)}): {field_dict(r.detail).get('error', '')}"
            for r in failed.drop_duplicates(["model", "settings"], keep="last").itertuples()
        ]
        blocks.append(Block(heading="Failed to compile", bullets=bullets))
    return Section("options", "Latency by option (compile, dtype, layout, threads)", blocks)


def environment_line(env: dict) -> str:
    """The machine(s) in words, with torch version, commit and date, and how timings ran
    (the threads of the timings, not of the process that stored them)."""
    if env.get("machines"):
        return "Measured on: " + "; ".join(env["machines"]) + options_line(env)
    machine = machine_of(env)
    name = machine.name if machine.words or machine.label else "an unnamed machine"
    line = f"Measured on {name} ({_build_text(env)}"
    if (env.get("machine") or {}).get("fingerprint"):
        line += f"; fingerprint {machine.fingerprint}"
    return line + ")" + options_line(env)


def options_line(env: dict) -> str:
    options = env.get("options")
    return f"; timing options: {', '.join(options)}" if options else ""


def _markdown_table(table: Table) -> str:
    frame = table.frame.fillna("").astype(str)
    if len(frame.columns) > MAX_MARKDOWN_COLUMNS:
        raise ValueError(f"a markdown table has {len(frame.columns)} columns; the limit is 10")
    align = ["right" if c in table.numeric else "left" for c in frame.columns]
    text = frame.to_markdown(index=False, colalign=align, disable_numparse=True)
    return text + (
        f"\n\nEvery column: [{table.csv_name}]({table.csv_name})" if table.csv_name else ""
    )


def conclusion_text(report: Report) -> str:
    """The report's answer in a sentence or two (empty when it judged no claim)."""
    if report.card is None:
        return ""
    return conclusion(report.card, report.machine, report.others)


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    if conclusion_text(report):
        lines += [f"**{conclusion_text(report)}**", ""]
    lines += [environment_line(report.environment), ""]
    lines += ["Contents: " + ", ".join(f"[{s.title}](#{s.id})" for s in report.sections), ""]
    for section in report.sections:
        lines += [f'<a id="{section.id}"></a>', "", f"## {section.title}", ""]
        for block in section.blocks:
            if block.heading:
                lines += [f"### {block.heading}", ""]
            if block.figure is not None:
                lines += [f"![{block.figure.title}]({block.figure.name}.png)", ""]
            if block.text:
                lines += [block.text, ""]
            lines += [f"- {b}" for b in block.bullets] + ([""] if block.bullets else [])
            if block.table is not None:
                lines += [_markdown_table(block.table), ""]
            lines += [f"[{i}] {note}  " for i, note in enumerate(block.footnotes, 1)]
            lines += [""] if block.footnotes else []
    return "\n".join(lines)


def _cell_class(column: str, value: str, numeric: tuple[str, ...]) -> str:
    """num: right-aligned, never wrapped; long: a sentence that needs room to read."""
    if column in numeric:
        return "num"
    return "long" if len(value) > 60 else ""


VERDICT_CLASSES = {
    HOLDS: "holds",
    MADDS_ONLY: "madds",
    FAILS: "fails",
    UNMEASURED: "unmeasured",
}


def _badge(verdict: str) -> str:
    """A verdict as a coloured badge that still reads as text (colour is never alone)."""
    kind = VERDICT_CLASSES.get(verdict, "open" if verdict.startswith("inconclusive") else "")
    return f'<span class="badge b-{kind}">{escape(verdict)}</span>' if kind else escape(verdict)


def _is_verdict(column: str) -> bool:
    return column.startswith("Verdict") or column in ("CPU half", "GPU half")


def _html_cell(column: str, value: str, table: Table, row: int) -> str:
    if _is_verdict(column):
        inner = _badge(value)
    elif column in table.details:
        more = escape(table.details[column][row])
        inner = f"<details><summary>{escape(value)}</summary>{more}</details>"
    else:
        inner = escape(value)
    kind = _cell_class(column, value, table.numeric)
    return f'<td class="{kind}" data-label="{escape(column)}">{inner}</td>'


def _html_table(table: Table) -> str:
    frame = table.frame.fillna("").astype(str)
    head = "".join(
        f'<th class="{"num" if c in table.numeric else ""}">{escape(c)}</th>' for c in frame.columns
    )
    body = "".join(
        "<tr>"
        + "".join(_html_cell(c, v, table, k) for c, v in zip(frame.columns, row, strict=True))
        + "</tr>"
        for k, row in enumerate(frame.itertuples(index=False))
    )
    link = f'<p class="csv"><a href="{table.csv_name}">Every column: {table.csv_name}</a></p>'
    css = "data sortable" + (" cards" if table.cards else "")
    table_html = f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr>'
    return (
        table_html
        + f"</thead><tbody>{body}</tbody></table></div>"
        + (link if table.csv_name else "")
    )


def to_html(report: Report) -> str:
    loader = jinja2.PackageLoader("dynbench.report", "templates")
    env = jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape())
    env.filters["table"] = _html_table
    return env.get_template("report.html.j2").render(
        report=report,
        conclusion=conclusion_text(report),
        environment_line=environment_line(report.environment),
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def write_report(report: Report, out_dir: Path, format: str = "both") -> list[Path]:
    """Write report.md (with its PNGs and CSVs) and/or report.html into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    blocks = [b for s in report.sections for b in s.blocks]
    for block in blocks:
        if block.table is not None and block.table.csv is not None:
            path = out_dir / block.table.csv_name
            block.table.csv.to_csv(path, index=False)
            written.append(path)
    if format in ("md", "both"):
        for block in blocks:
            if block.figure is not None:
                path = out_dir / f"{block.figure.name}.png"
                path.write_bytes(block.figure.png)
                written.append(path)
        path = out_dir / "report.md"
        path.write_text(to_markdown(report))
        written.append(path)
    if format in ("html", "both"):
        path = out_dir / "report.html"
        path.write_text(to_html(report))
        written.append(path)
    return written
