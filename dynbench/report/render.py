"""The report: the claims scorecard first, then the plots, the timings with their quality, the
reproduction matrix and the sizes (each section built by its module in
dynbench.report.sections); written as markdown (PNG plots and CSV tables beside it) and as
one self-contained HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dynbench.report.claims import scorecard, tally
from dynbench.report.data import DEFAULT_OPTIONS, judged_setting, latest_by_options, papers_setting
from dynbench.report.document import Block, Report, Section
from dynbench.report.html import to_html
from dynbench.report.machines import split_by_machine
from dynbench.report.markdown import to_markdown
from dynbench.report.sections import (
    batches,
    floor,
    matrix,
    options,
    plots,
    resolution,
    sizes,
    sparsity,
    speed,
    timing,
)
from dynbench.report.sections import machines as machines_section
from dynbench.report.sections import scorecard as scorecard_section
from dynbench.report.sections.machines import machine_text
from dynbench.report.sections.reference import beside_reference_section
from dynbench.report.user_operator import user_operator_section
from dynbench.report.verdicts import UNMEASURED

FORMATS = ("md", "html", "both")


def build_report(frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> Report:
    """The report of ``frame``; records of several machines are judged machine by machine;
    with ``reference`` (another machine's records), a section sets its figures beside."""
    report = _build_report(frame)
    if reference is not None:
        section, line = beside_reference_section(frame, reference)
        report.sections.insert(1, section)
        report.others.append(line)
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
    claims = scorecard_section.section(report.card, len(papers) - len(judged))
    measured = (report.card["Verdict"] != UNMEASURED).any()
    if measured:
        report.sections.append(claims)
    for section in (
        plots.section(papers),
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
        *timing.sections(papers),
        floor.section(papers, frame),
        options.section(group),
        batches.section(papers),
        sparsity.section(papers),
        speed.section(judged_setting(group)),
        user_operator_section(papers),
    ]


def _size_sections(frame: pd.DataFrame) -> list[Section | None]:
    """The sections of sizes and MAdds, the same on every machine."""
    papers = papers_setting(frame)
    return [resolution.section(papers), matrix.section(papers), sizes.section(papers)]


def _machines_report(
    frame: pd.DataFrame, machines: list[tuple[str, pd.DataFrame]], env: dict
) -> Report:
    """One column group per machine in the scorecard, each machine's timings on their own;
    sizes and MAdds do not depend on the machine and are shown once."""
    env = {**env, "machines": [machine_text(name, group) for name, group in machines]}
    report = Report("dynbench report", env)
    section, cards = machines_section.scorecard_section(machines, frame)
    report.sections.append(section)
    # The machine holding most records: a short run on a second machine (a few GPU
    # figures) must not take the plots of the one that measured nearly everything.
    main_name, main = max(machines, key=lambda m: len(m[1]))
    report.card, report.machine = cards[main_name], main_name
    report.others = [f"{name}: {tally(card)}" for name, card in cards.items() if name != main_name]
    main_plots = plots.section(papers_setting(main))
    if main_plots is not None:
        main_plots.title += f" ({main_name})"
        main_plots.blocks.insert(
            0,
            Block(
                text=f"Plots of {main_name}, the machine with the most measurements; "
                "'dynbench report --machine NAME' draws another's."
            ),
        )
        report.sections.append(main_plots)
    for k, (name, group) in enumerate(machines, 1):
        for section in _machine_sections(group, frame):
            if section is not None:
                section.id += f"-m{k}"
                section.title += f" ({name})"
                report.sections.append(section)
    report.sections += [s for s in _size_sections(frame) if s is not None]
    return report


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
