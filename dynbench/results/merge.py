"""``dynbench merge OUT IN...``: the stores of several machines (or shards) in one.

A measurement is known by its uid (see :mod:`dynbench.results.schema`), so merging a store
twice, or a store that already went into the output, adds nothing; a run is known by its
run id. Each input goes in as one transaction: an interrupted merge leaves the output as it
was before that input, and merging again completes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from dynbench.results.schema import measurements, runs
from dynbench.results.store import ResultStore


@dataclass
class Merged:
    source: str
    runs: int  # runs added
    measurements: int  # measurements added
    known: int  # measurements the output already held


def merge(out: ResultStore, source: ResultStore) -> Merged:
    """Copy into ``out`` every run and measurement of ``source`` it does not hold."""
    run_rows, rows = source.dump()
    with out.engine.begin() as conn:
        have_runs = set(conn.execute(sa.select(runs.c.run_id)).scalars())
        have = set(conn.execute(sa.select(measurements.c.uid)).scalars())
        new_runs = [r for r in run_rows if r["run_id"] not in have_runs]
        new_rows = []
        for row in rows:
            if row["uid"] not in have:
                have.add(row["uid"])
                new_rows.append(row)
        if new_runs:
            conn.execute(sa.insert(runs), new_runs)
        if new_rows:
            conn.execute(sa.insert(measurements), new_rows)
    return Merged(source.where, len(new_runs), len(new_rows), len(rows) - len(new_rows))
