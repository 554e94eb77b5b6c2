"""The scorecard of a report over several machines: a verdict column group per machine, each
machine's reasons, and the machine named in words."""

from __future__ import annotations

import pandas as pd

from dynbench.errors import DynbenchError
from dynbench.report.claims import scorecard, tally
from dynbench.report.data import field_dict, judged_setting
from dynbench.report.document import MAX_MARKDOWN_COLUMNS, Block, Section, Table
from dynbench.report.machines import build_text, machine_of
from dynbench.report.sections.scorecard import rules_block
from dynbench.report.verdicts import UNMEASURED
from dynbench.results.names import SIZE_METRICS

# what a model's size claims use: the same on every machine
MACHINE_FREE_METRICS = (*SIZE_METRICS, "weight_bytes_per_image")


def scorecard_section(
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
    blocks.append(rules_block())
    return Section("claims", "Claims scorecard", blocks), dict(cards)


def machine_text(name: str, group: pd.DataFrame) -> str:
    newest = group.sort_values("measured_at", kind="stable") if "measured_at" in group else group
    env = field_dict(newest["environment"].iloc[-1])
    machine = machine_of(env)
    hardware = ", ".join(p for p in (machine.cpu, machine.gpu) if p)
    return f"{name} ({hardware}; {build_text(env)}; fingerprint {machine.fingerprint})"
