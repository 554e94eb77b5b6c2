"""The store's tables (SQLAlchemy Core, one definition for SQLite and PostgreSQL) and their
version.

Version 1 is the SQLite file of dynbench 0.1 (``runs`` and ``measurements``, no version
table). Version 2 adds ``dynbench_meta`` (the version) and a ``uid`` per measurement, so that
merging stores can tell a measurement it already holds from a new one. A version-1 store is
migrated when it is opened for writing; read-only it is read as it is, each row's uid
derived the same way the migration derives it, so both readings agree.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

SCHEMA_VERSION = 2

metadata = sa.MetaData()

meta = sa.Table(
    "dynbench_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("suite", sa.Text, nullable=False),
    sa.Column("started", sa.Text, nullable=False),
    sa.Column("finished", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("environment", sa.Text, nullable=False),
)

measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("suite", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("environment", sa.Text, nullable=False),
    sa.Column("measured_at", sa.Text, nullable=False),
    sa.Column("uid", sa.String(40)),
)

INDEXES = [
    sa.Index("measurements_model", measurements.c.model, measurements.c.metric),
    sa.Index("measurements_uid", measurements.c.uid, unique=True),
]

# the columns every version has, in the order the frame and the export show them
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


def legacy_uid(row_id: int, run_id: str, model: str, metric: str, method: str, at: str) -> str:
    """The uid of a version-1 row: a hash of what identifies it in its file (its row id in
    the file, with its run, model, metric, method and time), so a migrated copy and a
    read-only reading of the same file agree."""
    key = "\x1f".join(map(str, (row_id, run_id, model, metric, method, at)))
    return hashlib.sha1(key.encode()).hexdigest()


def create(conn: sa.Connection) -> None:
    """Every table and index of the current version, where missing."""
    for table in metadata.sorted_tables:
        conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
    for index in INDEXES:
        conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
    conn.execute(sa.delete(meta).where(meta.c.key == "schema_version"))
    conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))


def version(conn: sa.Connection) -> int | None:
    """The store's schema version; None for an empty database."""
    tables = set(sa.inspect(conn).get_table_names())
    if "dynbench_meta" in tables:
        found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        return int(found) if found is not None else None
    return 1 if "measurements" in tables else None


def migrate_1_to_2(conn: sa.Connection) -> None:
    """Add the uid column, fill it for the existing rows, then the version table."""
    conn.execute(sa.text("ALTER TABLE measurements ADD COLUMN uid VARCHAR(40)"))
    rows = conn.execute(
        sa.select(
            measurements.c.id,
            measurements.c.run_id,
            measurements.c.model,
            measurements.c.metric,
            measurements.c.method,
            measurements.c.measured_at,
        )
    ).all()
    if rows:
        conn.execute(
            sa.update(measurements)
            .where(measurements.c.id == sa.bindparam("row_id"))
            .values(uid=sa.bindparam("new_uid")),
            [{"row_id": r[0], "new_uid": legacy_uid(*r)} for r in rows],
        )
    create(conn)
