"""Render a report as markdown and as one self-contained HTML page (jinja2)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd

from dynbench.report.data import size_table, timing_table
from dynbench.report.published_sizes import compare_published
from dynbench.report.published_speeds import compare_published_speed

SIZE_NOTE = (
    "params in parameters; MAdds = multiply-adds at batch 1 (fvcore's unit; torch's FLOPs "
    "halved). madds_conv_linear counts convolution and fully connected layers only (the papers' "
    "convention); params_x and madds_x are ratios to the family's static baseline."
)


TIMING_SECTIONS = [
    (
        "latency_ms",
        "latency_ratio",
        "CPU latency (batch 1, one thread)",
        "Median latency in ms from torch.utils.benchmark; each family measured interleaved, one "
        "turn per model per round in a shuffled order; ratio = median of the per-round latency "
        "ratios to the family baseline with a distribution-free 95% interval (order "
        "statistics); iqr_% = IQR / median over the rounds (noisy above the suite threshold); "
        "load = 1-minute load average before -> after.",
    ),
    (
        "train_step_ms_per_image",
        "train_step_ratio",
        "Training step (forward + backward + SGD)",
        "ms per image of one SGD step at the suite's batch, families interleaved step by step; "
        "ratio = median of the per-round ratios to the family baseline with a distribution-free "
        "95% interval (none below 6 rounds).",
    ),
]

SPEED_NOTE = (
    "Each published speed figure beside this machine's timing of the same model. The papers "
    "timed other hardware (column hardware; the ODConv paper does not say how many CPU threads), "
    "so only the slowdown over the static baseline is compared: printed_ratio from the paper's "
    "own baseline row, measured_ratio from the latency suite (with its 95% interval) or the "
    "throughput suite (within 5%). verdict: as printed = the printed ratio lies in our "
    "interval; costlier / cheaper here = the dynamic model costs more / less, relative to its "
    "baseline, here than in the paper."
)

PUBLISHED_NOTE = (
    "Each published row (source seed file, table, row as printed) beside the measurement of "
    "the registry model it corresponds to. params_ok / madds_ok: ✓ reproduced to the printed "
    "digit (half-up rounding), ≈ one unit off in the last digit, ✗ not reproduced; madds_ok "
    "names every counter that reproduces the printed MAdds. Δ% = (measured - published) / "
    "published. The note column carries conflicts between papers and transcription remarks."
)


@dataclass
class Section:
    title: str
    note: str
    table: pd.DataFrame


@dataclass
class Report:
    title: str
    environment: dict
    sections: list[Section] = field(default_factory=list)


def build_report(frame: pd.DataFrame) -> Report:
    env = json.loads(frame["environment"].iloc[-1]) if not frame.empty else {}
    report = Report("dynbench report", env)
    sizes = size_table(frame)
    if not sizes.empty:
        report.sections.append(Section("Params and MAdds", SIZE_NOTE, sizes))
    for metric, ratio, title, note in TIMING_SECTIONS:
        table = timing_table(frame, metric, ratio)
        if not table.empty:
            report.sections.append(Section(title, note, table))
    speed = compare_published_speed(frame)
    if not speed.empty:
        report.sections.append(Section("Published speed versus measured", SPEED_NOTE, speed))
    published = compare_published(frame)
    if not published.empty:
        report.sections.append(Section("Published versus measured", PUBLISHED_NOTE, published))
    return report


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if pd.isna(value):
            return ""
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    lines += [_environment_line(report.environment), ""]
    for section in report.sections:
        lines += [f"## {section.title}", "", section.note, ""]
        lines += [section.table.map(_fmt).to_markdown(index=False), ""]
    return "\n".join(lines)


def _environment_line(env: dict) -> str:
    keys = ("cpu", "gpu", "threads", "torch", "python", "git_commit", "timestamp")
    return "Measured on: " + "; ".join(f"{k} {env[k]}" for k in keys if env.get(k) is not None)


def to_html(report: Report) -> str:
    loader = jinja2.PackageLoader("dynbench.report", "templates")
    env = jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape())
    template = env.get_template("report.html.j2")
    return template.render(
        report=report,
        environment_line=_environment_line(report.environment),
        tables=[
            s.table.map(_fmt).to_html(index=False, classes="data", border=0)
            for s in report.sections
        ],
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def write_report(report: Report, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, html = out_dir / "report.md", out_dir / "report.html"
    md.write_text(to_markdown(report))
    html.write_text(to_html(report))
    return [md, html]
