"""Your machine beside the reference machine: the committed timing runs shipped with the
package (:mod:`dynbench.reference`), judged by the same rules, claim by claim.

Two machines' ratios *differ beyond noise* when their newest runs' 95% intervals do not
overlap and the ratios are more than ``MAX_CI_HALF_WIDTH`` (3%) apart: closer than that,
the quality rules already call one run's interval too wide to tell them apart.
"""

from __future__ import annotations

import importlib.resources

import pandas as pd

from dynbench.report.claims import load_claims, scorecard
from dynbench.report.data import field_dict, judged_setting
from dynbench.report.evidence import Lookup, Run
from dynbench.report.machines import split_by_machine
from dynbench.report.quality import MAX_CI_HALF_WIDTH
from dynbench.report.verdicts import UNMEASURED
from dynbench.results.names import SIZE_METRICS
from dynbench.results.store import ResultStore

MACHINE_FREE = (*SIZE_METRICS, "weight_bytes_per_image")


def reference_frame() -> pd.DataFrame:
    """Every record of the shipped reference store."""
    path = importlib.resources.files("dynbench.reference").joinpath("reference.sqlite")
    with importlib.resources.as_file(path) as db, ResultStore(str(db), write=False) as store:
        return store.frame()


def differs(yours: Run, theirs: Run) -> bool:
    """Disjoint intervals and more than 3% apart."""
    apart = abs(yours.value - theirs.value) > MAX_CI_HALF_WIDTH * theirs.value
    return apart and (yours.hi < theirs.lo or theirs.hi < yours.lo)


def beside_reference(frame: pd.DataFrame, reference: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(one row per claim timed on both machines: each machine's verdict and deciding
    latency, and whether they differ beyond noise; the reference machine's name)."""
    name = "reference"
    if not reference.empty:
        newest = reference.sort_values("measured_at", kind="stable")["environment"].iloc[-1]
        date = str(field_dict(newest).get("timestamp", ""))[:10]
        name = split_by_machine(reference)[0][0] + (f", runs up to {date}" if date else "")
    sizes = frame[frame["metric"].isin(MACHINE_FREE)]
    theirs_frame = judged_setting(pd.concat([sizes, reference], ignore_index=True))
    yours_frame = judged_setting(frame)
    yours_card, theirs_card = scorecard(yours_frame), scorecard(theirs_frame)
    yours_runs, theirs_runs = Lookup(yours_frame), Lookup(theirs_frame)
    rows = []
    for k, claim in enumerate(load_claims().itertuples(index=False)):
        mine = yours_runs.timed_runs(claim.model, "latency_ratio", "latency_ms")
        other = theirs_runs.timed_runs(claim.model, "latency_ratio", "latency_ms")
        if not mine or not other or yours_card["Verdict"].iloc[k] == UNMEASURED:
            continue
        gap = mine[-1].value / other[-1].value - 1
        rows.append(
            {
                "Claim": yours_card["Claim"].iloc[k],
                "Paper": yours_card["Paper"].iloc[k],
                "Yours": f"{yours_card['Verdict'].iloc[k]}: {mine[-1].text()}",
                "Reference": f"{theirs_card['Verdict'].iloc[k]}: {other[-1].text()}",
                "Difference": f"{100 * gap:+.1f}%"
                + (" (beyond noise)" if differs(mine[-1], other[-1]) else " (within noise)"),
            }
        )
    return pd.DataFrame(rows), name


def reference_line(table: pd.DataFrame, name: str) -> str:
    """One line for the terminal: how many claims differ from the reference machine."""
    if table.empty:
        return f"Reference ({name}): no claim timed on both machines"
    beyond = table[table["Difference"].str.endswith("(beyond noise)")]
    line = f"Reference ({name}): {len(table)} claims timed on both, {len(beyond)} differ"
    if not beyond.empty:
        first = beyond.iloc[0]
        line += f", e.g. {first['Claim']} {first['Difference'].split(' ')[0]}"
    return line
