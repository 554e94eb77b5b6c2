"""What the reading commands (report, export, compare, merge) take from the stores: the
stores checked to exist, the runs asked for checked to be there, the frames joined.

A store given for reading that does not exist, or a ``--run``/``--suite`` that selects
nothing, is a one-line error naming what is stored: an empty report or export would look
like a run without measurements.
"""

from __future__ import annotations

import pandas as pd

from dynbench.errors import DynbenchError
from dynbench.results.store import ResultStore, sqlite_path, store_url


def require_db(db: str | None) -> None:
    """A SQLite store given for reading must exist (sqlite would quietly create an empty
    one); a server's store is checked when it is opened."""
    if db is None:
        return
    path = sqlite_path(store_url(db))
    if path is not None and not path.exists():
        raise DynbenchError(f"database {db!r} does not exist; run 'dynbench run' first")


def report_frame(dbs: list[str] | None, runs: list[str] | None) -> pd.DataFrame:
    """The records of every store in ``dbs`` (default: the default store), one frame, of
    the ``runs`` only when given; none at all is an error (each store was checked with
    :func:`require_db` first)."""
    frames = []
    for path in dbs or [None]:
        with ResultStore(path, write=False) as store:
            frames.append(store.frame())
    frame = pd.concat(frames, ignore_index=True)
    if runs:
        unknown = sorted(set(runs) - set(frame["run_id"]))
        if unknown:
            raise DynbenchError(
                f"run id(s) {', '.join(unknown)} not in the store(s); "
                "'dynbench export' lists the stored runs"
            )
        frame = frame[frame["run_id"].isin(runs)]
    if frame.empty:
        raise DynbenchError("no measurements in the store(s); run 'dynbench run' first")
    return frame


def check_stored(stored_runs: pd.DataFrame, run: str | None, suite: str | None) -> None:
    """An export's --run or --suite that selects nothing is an error, as in 'dynbench
    report': an empty file would look like a run without measurements."""
    for column, value, option in (("run_id", run, "--run"), ("suite", suite, "--suite")):
        stored = list(dict.fromkeys(stored_runs[column]))
        if value and value not in stored:
            listed = ", ".join(stored[-10:]) or "none"
            raise DynbenchError(
                f"{option} {value!r} is not in the store; stored (newest last): {listed}"
            )
    if run:
        row = stored_runs[stored_runs["run_id"] == run].iloc[0]
        if suite and row["suite"] != suite:
            raise DynbenchError(f"run {run!r} is of suite {row['suite']!r}, not {suite!r}")
        raise DynbenchError(f"run {run!r} ({row['status']}) stored no measurements")
    raise DynbenchError(f"no run of suite {suite!r} stored a measurement")
