"""The results store: one row per measurement, committed as it is measured, in SQLite (a
file, the default) or any SQL server SQLAlchemy speaks to (PostgreSQL, shared by machines).

A run that is killed half way therefore keeps every measurement it finished; the next run
simply adds a new ``run_id``. Credentials never enter a store and never leave one: the
environment written with a run or a measurement is redacted (:mod:`dynbench.redact`), and so
is what is read back, for stores written before that rule (export, report and merge read
through :meth:`ResultStore.frame` and :meth:`ResultStore.dump`). A store the database
cannot read (a truncated or corrupted file) is a one-line :class:`DynbenchError`, whether it
fails when opened or only when a damaged page is read.

Several processes, on one machine or many, may write to one store at once: each insert is
its own transaction and no row depends on another. The store is ``./dynbench.sqlite``
unless ``--db`` or ``DYNBENCH_DB`` names another, as a path or a SQLAlchemy URL
(``sqlite:///runs.db``, ``postgresql+psycopg://user:pw@host/db``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from dynbench.errors import DynbenchError
from dynbench.redact import redact
from dynbench.results import schema
from dynbench.results.record import Record
from dynbench.results.schema import COLUMNS, measurements, runs

DB_ENV_VAR = "DYNBENCH_DB"
DEFAULT_DB = "dynbench.sqlite"
CONNECT_TIMEOUT_S = 5  # a wrong host fails within seconds, not after the OS's minutes
SQLITE_WAIT_S = 60  # how long a SQLite writer waits for another process's lock

__all__ = ["COLUMNS", "DB_ENV_VAR", "ResultStore", "load_results", "resolve_db", "store_url"]


def resolve_db(db: str | os.PathLike | None) -> str:
    """What the user named (``--db``, ``$DYNBENCH_DB`` or the default), as given."""
    return str(db or os.environ.get(DB_ENV_VAR) or DEFAULT_DB)


def is_url(db: str) -> bool:
    return "://" in db


def store_url(db: str) -> sa.URL:
    """A path becomes a SQLite URL; a URL must be one SQLAlchemy can parse."""
    if not is_url(db):
        return sa.URL.create("sqlite", database=str(Path(db)))
    try:
        return sa.make_url(db)
    except sa_exc.ArgumentError:
        raise DynbenchError(
            f"--db {db!r} is neither a path nor a database URL; accepted: a file path, "
            "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DBNAME"
        ) from None


def sqlite_path(url: sa.URL) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def shown(db: str) -> str:
    """The store as a message names it: the path, or the URL without its password."""
    return db if not is_url(db) else store_url(db).render_as_string(hide_password=True)


def check_writable(path: Path, what: str) -> None:
    """Fail early, before anything is measured, if ``path`` cannot be written. Nothing is
    created: another process may be creating the same store at this moment."""
    if path.is_dir():
        raise DynbenchError(f"{what} {str(path)!r} is a directory; give a file path")
    problem = None
    if path.exists():
        try:
            with open(path, "a"):
                pass
        except OSError as exc:
            problem = exc.strerror
    elif not path.parent.is_dir():
        problem = "No such file or directory"
    elif not os.access(path.parent, os.W_OK):
        problem = "Permission denied"
    if problem:
        raise DynbenchError(
            f"{what} {str(path)!r} is not writable ({problem}); give a path in a writable directory"
        )


def _engine(url: sa.URL, write: bool = True) -> sa.Engine:
    """An engine for the store; a SQLite writer puts the file in WAL mode (readers never
    block the writers), a reader leaves the file as it is: switching the mode writes to the
    file, which may be read-only (a store shipped inside an installed package)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_WAIT_S})
        if write:

            @sa.event.listens_for(engine, "connect")
            def _wal(dbapi_conn, _record) -> None:
                _set_wal(dbapi_conn)

        return engine
    args = {"connect_timeout": CONNECT_TIMEOUT_S} if backend == "postgresql" else {}
    try:
        return sa.create_engine(url, connect_args=args, pool_pre_ping=True)
    except (sa_exc.NoSuchModuleError, ImportError) as exc:
        hint = " (pip install 'dynbench[postgres]')" if backend == "postgresql" else ""
        raise DynbenchError(
            f"no database driver for {url.drivername!r}{hint}: {exc}; accepted: sqlite:///PATH, "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DBNAME"
        ) from None


def _set_wal(dbapi_conn: sqlite3.Connection, wait_s: float = SQLITE_WAIT_S) -> None:
    """Put the database in WAL mode, waiting while another process holds it.

    Switching the journal mode needs the database to itself, and SQLite answers "database
    is locked" at once instead of calling the busy handler: two processes opening a new
    store together would otherwise fail. The mode is stored in the file, so once one of
    them has set it the others find it set.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return lines[0] if lines else type(inner).__name__


class ResultStore:
    """Runs and measurements in one database; every insert is its own committed transaction.

    ``write=True`` (the default) creates the tables, or migrates an older version; a store
    opened with ``write=False`` is read as it is. A context manager:
    ``with ResultStore(db) as store: ...`` closes it on the way out.
    """

    def __init__(self, db: str | os.PathLike | None = None, write: bool = True) -> None:
        self.db = resolve_db(db)
        self.where = shown(self.db)
        url = store_url(self.db)
        path = sqlite_path(url)
        if path is not None and write:
            check_writable(path, "database")
        self.engine = _engine(url, write)
        try:
            with self.engine.connect() as conn:
                self.version = schema.version(conn)
            if write:
                self._set_up()
            else:
                self._check_version()
        except sa_exc.OperationalError as exc:
            self.engine.dispose()
            raise DynbenchError(
                f"cannot open database {self.where} ({_first_line(exc)}); check the URL, the "
                "server and its credentials, or pass another --db"
            ) from None
        except sa_exc.DatabaseError as exc:
            self.engine.dispose()
            raise DynbenchError(
                f"database {self.where} is not a usable dynbench store ({_first_line(exc)}); "
                "move it aside or pass another --db"
            ) from None

    def _check_version(self) -> None:
        if self.version is not None and self.version > schema.SCHEMA_VERSION:
            raise DynbenchError(
                f"database {self.where} has schema version {self.version}, newer than this "
                f"dynbench's {schema.SCHEMA_VERSION}; upgrade dynbench to use it"
            )
        if self.version is not None:
            with self.engine.connect() as conn:
                columns = {c["name"] for c in sa.inspect(conn).get_columns("measurements")}
            missing = set(COLUMNS) - columns
            if missing:
                raise DynbenchError(
                    f"database {self.where} is not a usable dynbench store (table "
                    f"'measurements' lacks {sorted(missing)}); move it aside or pass another --db"
                )

    def _set_up(self) -> None:
        """Create or migrate, once, even with several processes opening a new store at once:
        PostgreSQL serialises them on a lock; SQLite's write lock does, and a process that
        lost the race finds the work done when it tries again. A SQLite file with a damaged
        page is refused before anything is added to it (SQLite would write around it)."""
        self._check_version()
        self._check_intact()
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x64796E62)))
                    self.version = schema.version(conn)
                    if self.version is None:
                        schema.create(conn)
                    elif self.version == 1:
                        schema.migrate_1_to_2(conn)
                    self.version = schema.SCHEMA_VERSION
                return
            except (sa_exc.OperationalError, sa_exc.IntegrityError, sa_exc.ProgrammingError):
                if attempt == 4:
                    raise

    def _check_intact(self) -> None:
        """SQLite's ``quick_check`` (every page read once, no index cross-check)."""
        if self.version is None or self.engine.dialect.name != "sqlite":
            return
        with self._reading(), self.engine.connect() as conn:
            problems = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check")]
        if problems != ["ok"]:
            found = next((p for p in problems if not p.startswith("***")), problems[0])
            raise DynbenchError(
                f"database {self.where} is damaged (SQLite's quick_check: {found}); restore it "
                f"from a copy, or rescue what is readable with 'sqlite3 {self.db} .recover', "
                "and pass another --db"
            )

    def start_run(self, suite: str, environment: dict) -> str:
        run_id = uuid.uuid4().hex[:12]
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(runs).values(
                    run_id=run_id,
                    suite=suite,
                    started=environment["timestamp"],
                    finished=None,
                    status="running",
                    environment=_environment_text(environment),
                )
            )
        return run_id

    def finish_run(self, run_id: str, status: str, finished: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == run_id)
                .values(status=status, finished=finished)
            )

    def add(self, run_id: str, record: Record, environment: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(measurements).values(
                    run_id=run_id,
                    suite=record.suite,
                    model=record.model,
                    metric=record.metric,
                    value=record.value,
                    unit=record.unit,
                    method=record.method,
                    settings=json.dumps(dict(record.settings), sort_keys=True),
                    detail=json.dumps(record.detail_json(), sort_keys=True),
                    environment=_environment_text(environment, sort_keys=True),
                    measured_at=now_millis(),
                    uid=uuid.uuid4().hex,
                )
            )

    def frame(self, run_id: str | None = None, suite: str | None = None) -> pd.DataFrame:
        """The measurements in the order they were stored, the columns of :data:`COLUMNS`."""
        if self.version is None:
            return pd.DataFrame(columns=COLUMNS)
        query = sa.select(*(measurements.c[c] for c in COLUMNS)).order_by(measurements.c.id)
        if run_id:
            query = query.where(measurements.c.run_id == run_id)
        if suite:
            query = query.where(measurements.c.suite == suite)
        with self._reading(), self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=COLUMNS)
        frame["environment"] = frame["environment"].map(redact)
        return frame

    def runs(self) -> pd.DataFrame:
        """Every run (run_id, suite, status), in the order they started: a run that failed
        before its first measurement is here and nowhere in :meth:`frame`."""
        columns = ["run_id", "suite", "status"]
        if self.version is None:
            return pd.DataFrame(columns=columns)
        query = sa.select(runs.c.run_id, runs.c.suite, runs.c.status).order_by(runs.c.started)
        with self._reading(), self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).all(), columns=columns)

    def dump(self) -> tuple[list[dict], list[dict]]:
        """Every run and every measurement (with its uid, derived for a version-1 store) as
        plain rows, for :func:`dynbench.results.merge.merge`."""
        if self.version is None:
            return [], []
        with self._reading(), self.engine.connect() as conn:
            run_rows = [dict(r._mapping) for r in conn.execute(sa.select(runs))]
            columns = [measurements.c.id, *(measurements.c[c] for c in COLUMNS)]
            if self.version >= 2:
                columns.append(measurements.c.uid)
            rows = [dict(r._mapping) for r in conn.execute(sa.select(*columns))]
        for row in run_rows + rows:
            row["environment"] = redact(row["environment"])
        for row in rows:
            row_id = row.pop("id")
            if row.get("uid") is None:
                row["uid"] = schema.legacy_uid(
                    row_id,
                    row["run_id"],
                    row["model"],
                    row["metric"],
                    row["method"],
                    row["measured_at"],
                )
        return run_rows, rows

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A failure while reading is the store's, said in one line: a SQLite file with a
        damaged page (found only when that page is read), or a server that went away."""
        try:
            yield
        except sa_exc.DatabaseError as exc:
            path = sqlite_path(store_url(self.db))
            advice = (
                f"the file is damaged or truncated; restore it from a copy, or rescue what "
                f"is readable with 'sqlite3 {path} .recover', and pass another --db"
                if path is not None
                else "check the server, then run the command again"
            )
            raise DynbenchError(
                f"database {self.where} cannot be read ({_first_line(exc)}): {advice}"
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _environment_text(environment: dict, sort_keys: bool = False) -> str:
    """The environment as the store keeps it: JSON, with its credentials redacted."""
    return redact(json.dumps(environment, sort_keys=sort_keys))


def now_millis() -> str:
    """UTC now as the store has always written it: 2026-01-31T12:00:00.123Z (sorts as text)."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def load_results(
    db: str | os.PathLike | None = None, run_id: str | None = None, suite: str | None = None
) -> pd.DataFrame:
    """All measurements (optionally of one run or suite) as a DataFrame."""
    with ResultStore(db, write=False) as store:
        return store.frame(run_id, suite)
