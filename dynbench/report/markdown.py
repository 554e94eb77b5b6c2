"""The report as markdown: the conclusion, the machine line, then each section's blocks; a
table wider than ten columns is refused."""

from __future__ import annotations

from dynbench.report.answer import conclusion
from dynbench.report.document import MAX_MARKDOWN_COLUMNS, Report, Table
from dynbench.report.machines import build_text, machine_of


def environment_line(env: dict) -> str:
    """The machine(s) in words, with torch version, commit and date, and how timings ran
    (the threads of the timings, not of the process that stored them)."""
    if env.get("machines"):
        return "Measured on: " + "; ".join(env["machines"]) + options_line(env)
    machine = machine_of(env)
    name = machine.name if machine.words or machine.label else "an unnamed machine"
    line = f"Measured on {name} ({build_text(env)}"
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
