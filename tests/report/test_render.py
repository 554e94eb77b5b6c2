"""The rendered report on a constructed store: sections, footnotes, plots, no network."""

import re

import pytest

from dynbench.report.document import MAX_MARKDOWN_COLUMNS
from dynbench.report.html import to_html
from dynbench.report.render import build_report, write_report
from tests.report.stores import BASE, DYCONV, frame, latency

STORE = frame(
    BASE,
    DYCONV,
    latency("resnet18", 40.0),
    latency("resnet18_dyconv_4x", 56.0, ratio=1.40, low=1.39, high=1.41),
)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    paths = write_report(build_report(STORE), out)
    return out, {p.name for p in paths}


def test_sections_in_order_scorecard_first(written):
    out, _ = written
    markdown = (out / "report.md").read_text()
    titles = re.findall(r"^## (.+)$", markdown, flags=re.M)
    assert titles == [
        "Claims scorecard",
        "Plots",
        "CPU latency (batch 1, one thread)",
        "Reproduction matrix",
        "Params and MAdds",
    ]
    assert "holds for MAdds, not for time" in markdown
    assert "Quiet: no model's rounds spread by more than 10%" in markdown


def test_footnotes_are_numbered_and_present(written):
    out, _ = written
    markdown = (out / "report.md").read_text()
    matrix = markdown.split("## Reproduction matrix")[1].split("## Params and MAdds")[0]
    marks = set(re.findall(r"\| \[(\d+)\] *\|", matrix))
    notes = set(re.findall(r"^\[(\d+)\] ", matrix, flags=re.M))
    assert marks and marks <= notes
    assert "Conflicts between the papers" in matrix and "conflict" in matrix.lower()


def test_one_svg_per_plot_and_a_png_beside_the_markdown(written):
    out, names = written
    html = (out / "report.html").read_text()
    figures = re.findall(r"<figure>", html)
    assert len(figures) == html.count("<svg") == 4  # no GPU or training data in this store
    for name in ("madds-vs-latency", "published-vs-measured", "counter-totals", "latency-ratios"):
        assert f"{name}.png" in names and f"({name}.png)" in (out / "report.md").read_text()
    assert "sizes.csv" in names


def test_html_references_nothing_outside_itself(written):
    out, _ = written
    html = (out / "report.html").read_text()
    assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", html)
    assert not re.findall(r"<link|@import|url\((?!#)", html)  # url(#id): inside an SVG
    assert '<nav class="toc">' in html and "table.sortable" in html


def test_no_markdown_table_is_wider_than_the_limit(written):
    out, _ = written
    for line in (out / "report.md").read_text().splitlines():
        if line.startswith("|"):
            assert line.count("|") - 1 <= MAX_MARKDOWN_COLUMNS


def test_html_only_and_markdown_only(tmp_path):
    report = build_report(STORE)
    html = {p.name for p in write_report(report, tmp_path / "h", "html")}
    assert (
        "report.html" in html
        and "report.md" not in html
        and not any(n.endswith(".png") for n in html)
    )
    md = {p.name for p in write_report(report, tmp_path / "m", "md")}
    assert "report.md" in md and "report.html" not in md
    assert to_html(report).count("<section") == len(report.sections)


def test_a_store_that_judges_no_claim_leads_with_its_own_result():
    """A suite that measures no claim (here the baseline's latency alone) opens with its
    own section; the scorecard, one line per command, comes last."""
    report = build_report(frame(latency("resnet18", 40.0)))
    ids = [s.id for s in report.sections]
    assert ids[0] == "latency" and ids[-1] == "claims"
    claims = report.sections[-1]
    assert all(b.table is None for b in claims.blocks)
    assert claims.blocks[0].text == "32 claims: 32 not measured."
