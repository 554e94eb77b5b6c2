"""The answer in a terminal: the tally, one line per measured claim, what would settle
the rest, and where the report is; at most 40 lines of at most 100 columns.

Tables and per-counter notes live in the report (or behind ``--verbose``); this is what a
user reads first, so it is short enough to fit one screen whatever the store holds.
"""

from __future__ import annotations

import textwrap

import pandas as pd

from dynbench.report.claims import tally
from dynbench.report.verdicts import (
    COUNTERS_DISAGREE,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    MADDS_ONLY,
    MEASURED_BY,
    NOISY,
    STRADDLES,
    UNMEASURED,
)

WIDTH = 100
MAX_LINES = 40
SHORT_VERDICTS = {
    HOLDS: "holds",
    MADDS_ONLY: "MAdds only",
    FAILS: "does not hold",
    NOISY: "? noisy",
    STRADDLES: "? straddles",
    COUNTERS_DISAGREE: "? counters",
}
LEGEND = (
    "MAdds only = holds for MAdds, not for time; ? = inconclusive (noisy: no quiet run; "
    "straddles: runs on both sides; counters: MAdds counters disagree)"
)
TITLE_WIDTH = 47


def _columns(text: str) -> int:
    """Width as the strictest terminal tool counts it: UTF-8 bytes (× and … count 2-3)."""
    return len(text.encode())


def _short(text: str, width: int) -> str:
    if _columns(text) <= width:
        return text
    while _columns(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _title(row) -> str:
    title = row.Claim.replace("MobileNetV2", "MNv2").replace(": negligible cost", ": cost")
    return _short(f"{title} [{row.Paper}]", TITLE_WIDTH)


def _deciding(text: str) -> str:
    """The deciding number without the run range (the report lists the runs)."""
    return text.split(" (")[0] if " runs: " in text else text


def claim_lines(card: pd.DataFrame) -> list[str]:
    """One line per measured claim: verdict, short title with its paper, deciding number."""
    lines = []
    measured = card[card["Verdict"] != UNMEASURED]
    for row in measured.itertuples(index=False):
        verdict = SHORT_VERDICTS.get(row.Verdict, row.Verdict)
        line = f"{verdict:<13} {_title(row):<{TITLE_WIDTH}} {_deciding(row.Deciding)}"
        lines.append(_short(line.rstrip(), WIDTH))
    return lines


def settle_lines(card: pd.DataFrame) -> list[str]:
    """The claims left open (not measured or inconclusive) and the commands that settle
    them, wrapped to the width."""
    open_claims = card[card["Verdict"].isin([UNMEASURED, *INCONCLUSIVE])]
    if open_claims.empty:
        return []
    commands: dict[str, int] = {}
    disputed = 0
    for row in open_claims.itertuples(index=False):
        if row.Verdict == COUNTERS_DISAGREE:  # no run settles a convention: the report says
            disputed += 1
            continue
        for command in MEASURED_BY[row.kind].split("; "):
            commands[command] = commands.get(command, 0) + 1
    unmeasured = int((open_claims["Verdict"] == UNMEASURED).sum())
    inconclusive = len(open_claims) - unmeasured
    text = f"Open: {unmeasured} not measured, {inconclusive} inconclusive"
    if commands:
        text += "; to settle: " + ", ".join(f"{c} ({n})" for c, n in commands.items())
    if disputed:
        text += f"; {disputed} with MAdds counters disagreeing: see the report's matrix"
    return [_short(line, WIDTH) for line in textwrap.wrap(text, WIDTH - 4, subsequent_indent="  ")]


def answer_lines(
    card: pd.DataFrame, where: str = "", machine: str = "", others: list[str] | None = None
) -> list[str]:
    """The whole answer: tally, claims, what is open, other machines' tallies, the report."""
    lines = [_short(f"dynbench: {len(card)} claims{' on ' + machine if machine else ''}", WIDTH)]
    lines += textwrap.wrap(tally(card), WIDTH - 4, subsequent_indent="  ")
    claims = claim_lines(card)
    budget = MAX_LINES - len(lines) - 6 - len(others or [])
    if len(claims) > budget:
        left = len(claims) - budget + 1
        claims = claims[: budget - 1] + [f"… {left} more claims in the report"]
    lines += claims
    if claims:
        lines += textwrap.wrap(LEGEND, WIDTH - 4)
    lines += settle_lines(card)
    lines += [_short(line, WIDTH) for line in others or []]
    if where:
        lines.append(_short(f"Report: {where}", WIDTH))
    return lines[:MAX_LINES]


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def conclusion(card: pd.DataFrame, machine: str = "", others: list[str] | None = None) -> str:
    """The answer as a sentence, e.g. 'On 2-core Intel Xeon, of 31 measured claims 9 hold,
    14 hold for MAdds but not for time (latency +21% to +80%), 8 do not hold ...'."""
    counts = card["Verdict"].value_counts()
    measured = len(card) - int(counts.get(UNMEASURED, 0))
    where = f"On {machine}, " if machine else ""
    if not measured:
        return f"{where}no claim is measured yet: {len(card)} claims wait for a timing run."
    parts = []
    if counts.get(HOLDS):
        parts.append(f"{counts[HOLDS]} hold{'s' if counts[HOLDS] == 1 else ''}")
    if counts.get(MADDS_ONLY):
        rows = card[card["Verdict"] == MADDS_ONLY]
        values = rows["latency_value"].dropna()
        span = ""
        if not values.empty:
            span = (
                f" (latency {100 * (values.min() - 1):+.0f}% to {100 * (values.max() - 1):+.0f}%)"
            )
        parts.append(f"{counts[MADDS_ONLY]} hold for MAdds but not for time{span}")
    if counts.get(FAILS):
        parts.append(f"{counts[FAILS]} do{'es' if counts[FAILS] == 1 else ''} not hold")
    open_ = sum(int(counts.get(v, 0)) for v in INCONCLUSIVE)
    if open_:
        parts.append(f"{open_} {'is' if open_ == 1 else 'are'} inconclusive")
    listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    text = f"{where}of {_plural(measured, 'measured claim', 'measured claims')}, {listed}."
    if counts.get(UNMEASURED):
        text += f" {_plural(int(counts[UNMEASURED]), 'claim is', 'claims are')} not measured here."
    if others:
        text += " Other machines: " + "; ".join(others) + "."
    return text
