"""The claims scorecard: each headline claim of the seed papers, judged on this machine.

Claims are data (``dynbench/published/claims.csv``: the sentence, its source and the
printed numbers); the evidence a verdict rests on is gathered in
:mod:`dynbench.report.evidence`, the rules that turn it into a verdict are in
:mod:`dynbench.report.judges` (one function per kind of claim), and
:mod:`dynbench.report.verdicts` names the verdicts and states the rules in the report.
"""

from __future__ import annotations

import importlib.resources

import pandas as pd

from dynbench.report.evidence import Lookup
from dynbench.report.judges import JUDGES, pct
from dynbench.report.verdicts import (
    MEASURED_BY,
    UNMEASURED,
    VERDICTS,
)

# the seed files' ids (published.csv's sources) as the papers' short names
SHORT_SOURCES = {
    "000": "DY-Conv repro.",
    "001": "DY-Conv repro.",
    "002": "DCD",
    "003": "ODConv",
    "004": "Spatial DynConv",
}


def load_claims() -> pd.DataFrame:
    path = importlib.resources.files("dynbench.published").joinpath("claims.csv")
    with importlib.resources.as_file(path) as csv_path:
        claims = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    for column in ("printed_ratio", "printed_madds_ratio", "printed_gpu_ratio"):
        claims[column] = pd.to_numeric(claims[column].replace("", None))
    return claims


def short_title(claim) -> str:
    """A claim in a few words, e.g. 'CondConv (8×) on ResNet-18: negligible cost'."""
    sentence = str(claim.sentence)
    subject = sentence.split(":")[0].split(" runs at ")[0]
    if claim.kind == "cost":
        return f"{subject}: negligible cost"
    if claim.kind == "time":
        return f"{subject}: +{100 * (claim.printed_ratio - 1):.0f}% time"
    if claim.kind == "speed":
        return f"{subject}: speed table"
    if claim.kind == "compact":
        short = sentence.split(" (")[0].replace("DCD needs only", "DCD:")
        return short.replace(" parameters on", " params,")
    if claim.kind == "train":
        return f"DY-Conv ResNet-18 CIFAR-10: {claim.printed_ratio:.1f}× training time"
    return "Spatial DynConv: up to 2× faster"


def paper_of(claim) -> str:
    return SHORT_SOURCES.get(str(claim.source)[:3], str(claim.source))


def printed_text(claim) -> str:
    """The claim's own printed figures (never another claim's)."""
    if claim.kind == "cost":
        return f"MAdds {pct(claim.printed_madds_ratio)}"
    if claim.kind == "speed":
        return f"CPU {claim.printed_ratio:.2f}×, GPU {claim.printed_gpu_ratio:.2f}×"
    if claim.kind == "compact":
        return f"{claim.printed_ratio:.0%} of params"
    if claim.kind == "time":
        return f"time {claim.printed_ratio:.2f}×, MAdds {pct(claim.printed_madds_ratio)}"
    return f"{claim.printed_ratio:.2f}×"


def scorecard(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: what it says, what was measured here, the verdict and why."""
    lookup = Lookup(frame)
    rows = []
    for claim in load_claims().itertuples(index=False):
        m = lookup.measured(claim)
        judged = JUDGES[claim.kind](claim, m)
        madds = " / ".join(
            t for t in (pct(m.madds_ratio("conv_linear")), pct(m.madds_ratio("analytic"))) if t
        )
        gpu = m.gpu[-1].value if m.gpu else None
        rows.append(
            {
                "Claim": short_title(claim),
                "Paper": paper_of(claim),
                "Verdict": judged.verdict,
                "Deciding": judged.deciding,
                "Why": judged.why,
                "Printed": printed_text(claim),
                "Params ×": m.ratio(m.params, m.params_ref),
                "MAdds overhead (conv+FC / analytic)": madds,
                "Weight bytes ×": m.ratio(m.weight_bytes, m.weight_bytes_ref),
                "CPU latency × [95% CI]": m.latency[-1].text() if m.latency else "",
                "latency_value": m.latency[-1].value if m.latency else None,
                "GPU throughput ×": gpu,
                "CPU half": judged.halves.get("CPU", ""),
                "GPU half": judged.halves.get("GPU", ""),
                "Sentence": f"{claim.sentence} ({paper_of(claim)}, {claim.table})",
                "kind": claim.kind,
                "model": claim.model,
                "id": claim.id,
                "measured_by": MEASURED_BY[claim.kind] if judged.verdict == UNMEASURED else "",
            }
        )
    return pd.DataFrame(rows)


def tally(card: pd.DataFrame) -> str:
    """'9 holds, 12 holds for MAdds, not for time, ...' in the order of :data:`VERDICTS`."""
    counts = card["Verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
