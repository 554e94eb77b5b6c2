"""The terminal answer: short, narrow, and about the claims."""

import pandas as pd

from dynbench.report.answer import MAX_LINES, WIDTH, answer_lines
from dynbench.report.claims import scorecard
from tests.report.stores import BASE, DYCONV, frame, latency


def _card():
    store = frame(BASE, DYCONV, latency("resnet18", 40.0), latency(
        "resnet18_dyconv_4x", 56.0, ratio=1.40, low=1.39, high=1.41))  # fmt: skip
    return scorecard(store)


def test_the_answer_names_the_tally_each_measured_claim_and_the_report():
    lines = answer_lines(_card(), "out/report.html", "2-core Intel Xeon", ["H200: 3 holds"])
    assert lines[0] == "dynbench: 32 claims on 2-core Intel Xeon"
    assert lines[1].startswith("1 holds for MAdds, not for time, ")
    claim = next(line for line in lines if "DY-Conv (4×) on ResNet-18" in line)
    assert claim.startswith("MAdds only ") and claim.endswith("latency 1.400× [1.390, 1.410]")
    assert "[ODConv]" in claim
    opened = " ".join(line.strip() for line in lines if "not measured" in line or "--suite" in line)
    assert "dynbench run --suite latency-published" in opened
    assert "H200: 3 holds" in lines and lines[-1] == "Report: out/report.html"


def test_the_answer_fits_forty_lines_of_a_hundred_columns_whatever_the_store():
    card = _card()
    many = pd.concat([card, card], ignore_index=True).assign(
        Verdict="holds", Deciding="latency 1.000× [0.990, 1.010]" + "x" * 90
    )
    for lines in (answer_lines(card, "r"), answer_lines(many, "r" * 200, "m", ["o"] * 5)):
        assert len(lines) <= MAX_LINES and max(len(line.encode()) for line in lines) <= WIDTH
    assert "more claims in the report" in " ".join(answer_lines(many, "r"))
