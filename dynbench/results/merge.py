"""``dynbench merge OUT IN...``: the stores of several machines (or shards) in one.

A measurement is known by its uid (see :mod:`dynbench.results.schema`), so merging a store
twice, or a store that already went into the output, adds nothing; a run is known by its
run id, and a run the output still holds as running takes the source's end (status and
finish time) when the source saw it end: merging a store mid-run, then again after, leaves
the run as it ended. Each input goes in as one transaction: an interrupted merge leaves the
output as it was before that input, and merging again completes it.
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
    ended: int  # runs the output held as running that the source saw end
    measurements: int  # measurements added
    known: int  # measurements the output already held


def merge(out: ResultStore, source: ResultStore) -> Merged:
    """Copy into ``out`` every run and measurement of ``source`` it does not hold."""
    run_rows, rows = source.dump()
    with out.engine.begin() as conn:
        status = {
            run_id: st for run_id, st in conn.execute(sa.select(runs.c.run_id, runs.c.status))
        }
        have = set(conn.execute(sa.select(measurements.c.uid)).scalars())
        new_runs = [r for r in run_rows if r["run_id"] not in status]
        ended = [
            r for r in run_rows if status.get(r["run_id"]) == "running" and r["status"] != "running"
        ]
        new_rows = []
        for row in rows:
            if row["uid"] not in have:
                have.add(row["uid"])
                new_rows.append(row)
        if new_runs:
            conn.execute(sa.insert(runs), new_runs)
        for run in ended:
            conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == run["run_id"])
                .values(status=run["status"], finished=run["finished"])
            )
        if new_rows:
            conn.execute(sa.insert(measurements), new_rows)
    return Merged(source.where, len(new_runs), len(ended), len(new_rows), len(rows) - len(new_rows))
