"""The claims scorecard of one machine: every measured claim with its verdict, deciding number
and why; the claims a longer run would measure, one line per command; and the verdict rules,
built once."""

from __future__ import annotations

import pandas as pd

from dynbench.report.claims import tally
from dynbench.report.document import Block, Section, Table, decimals
from dynbench.report.quality import RULES
from dynbench.report.verdicts import UNMEASURED, VERDICT_RULES

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


def section(card: pd.DataFrame, set_aside: int = 0) -> Section:
    """The claims as judged (``card``); ``set_aside``: records left out of the judgment
    because they ran in another setting than the papers' (:func:`judged_setting`). The table
    holds the claims this store measures; the others collapse into one line per command that would
    measure them (claims.csv beside the report lists every claim)."""
    every = card
    card = card[card["Verdict"] != UNMEASURED]
    shown = card[list(SCORECARD_COLUMNS)].copy()
    for column in ("Params ×", "GPU throughput ×"):
        shown[column] = shown[column].map(lambda v: decimals(v, 2))
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
    blocks.append(rules_block())
    return Section("claims", "Claims scorecard", blocks)


# the verdict rules as the report states them under each scorecard: the claims' rules, then
# the noise rule every timing section applies
RULE_LINES = (*(f"{name}: {rule}" for name, rule in VERDICT_RULES), RULES)


def rules_block() -> Block:
    return Block(heading="Verdict rules", bullets=list(RULE_LINES))
