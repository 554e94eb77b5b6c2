"""The results store: one SQLite row per measurement, committed as it is measured.

A run that is killed half way therefore keeps every measurement it finished;
the next run simply adds a new ``run_id``. The database path defaults to
``./dynbench.sqlite``, overridden by ``--db`` or ``DYNBENCH_DB``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

import pandas as pd

from dynbench.errors import DynbenchError
from dynbench.results.record import Record

DB_ENV_VAR = "DYNBENCH_DB"
DEFAULT_DB = "dynbench.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    environment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    suite TEXT NOT NULL,
    model TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    unit TEXT NOT NULL,
    method TEXT NOT NULL,
    settings TEXT NOT NULL,
    detail TEXT NOT NULL,
    environment TEXT NOT NULL,
    measured_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_model ON measurements(model, metric);
"""

COLUMNS = [
    "run_id",
    "suite",
    "model",
    "metric",
    "value",
    "unit",
    "method",
    "settings",
    "detail",
    "environment",
    "measured_at",
]


def resolve_db_path(path: str | os.PathLike | None) -> Path:
    return Path(path or os.environ.get(DB_ENV_VAR) or DEFAULT_DB)


def check_writable(path: Path, what: str) -> None:
    """Fail early, before anything is measured, if ``path`` cannot be written."""
    if path.is_dir():
        raise DynbenchError(f"{what} {str(path)!r} is a directory; give a file path")
    existed = path.exists()
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise DynbenchError(
            f"{what} {str(path)!r} is not writable ({exc.strerror}); give a path in a writable "
            "directory"
        ) from None
    if not existed:
        path.unlink()


class ResultStore:
    """A thin layer over SQLite; every insert is its own committed transaction.

    A context manager: ``with ResultStore(path) as store: ...`` closes it on the way out.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = resolve_db_path(path)
        check_writable(self.path, "database")
        try:
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.executescript(_SCHEMA)
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise DynbenchError(
                f"database {str(self.path)!r} is not a usable dynbench SQLite file ({exc}); "
                "move it aside or pass another --db path"
            ) from None

    def _check_schema(self) -> None:
        cols = {row[1] for row in self.conn.execute("PRAGMA table_info(measurements)")}
        missing = set(COLUMNS) - cols
        if missing:
            raise sqlite3.DatabaseError(f"table 'measurements' lacks {sorted(missing)}")

    def start_run(self, suite: str, environment: dict) -> str:
        run_id = uuid.uuid4().hex[:12]
        with self.conn:
            self.conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, NULL, 'running', ?)",
                (run_id, suite, environment["timestamp"], json.dumps(environment)),
            )
        return run_id

    def finish_run(self, run_id: str, status: str, finished: str) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET status = ?, finished = ? WHERE run_id = ?",
                (status, finished, run_id),
            )

    def add(self, run_id: str, record: Record, environment: dict) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO measurements (run_id, suite, model, metric, value, unit, method,"
                " settings, detail, environment, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                (
                    run_id,
                    record.suite,
                    record.model,
                    record.metric,
                    record.value,
                    record.unit,
                    record.method,
                    json.dumps(dict(record.settings), sort_keys=True),
                    json.dumps(record.detail_json(), sort_keys=True),
                    json.dumps(environment, sort_keys=True),
                ),
            )

    def frame(self, run_id: str | None = None, suite: str | None = None) -> pd.DataFrame:
        query = f"SELECT {', '.join(COLUMNS)} FROM measurements"
        clauses, params = [], []
        if run_id:
            clauses.append("run_id = ?")
            params.append(run_id)
        if suite:
            clauses.append("suite = ?")
            params.append(suite)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return pd.read_sql_query(query + " ORDER BY id", self.conn, params=params)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def load_results(
    db: str | os.PathLike | None = None, run_id: str | None = None, suite: str | None = None
) -> pd.DataFrame:
    """All measurements (optionally of one run or suite) as a DataFrame."""
    with ResultStore(db) as store:
        return store.frame(run_id, suite)
