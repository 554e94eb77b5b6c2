"""The report as one self-contained HTML page (inline CSS, SVG and a few lines of script):
verdicts as coloured badges that still read as text, claim sentences one click away."""

from __future__ import annotations

import datetime as dt

import jinja2
from markupsafe import escape

from dynbench.report.document import Report, Table
from dynbench.report.markdown import conclusion_text, environment_line
from dynbench.report.verdicts import FAILS, HOLDS, MADDS_ONLY, UNMEASURED


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
