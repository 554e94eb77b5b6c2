"""Stores to test against: a SQLite file and a database of a real PostgreSQL server.

The server is ``$DYNBENCH_TEST_POSTGRES`` (a URL whose user may create databases; the test
command starts one with scripts/postgres.sh and exports it), else one this session starts
from PostgreSQL's binaries and stops at the end. Each test gets a database of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_ENV = "DYNBENCH_TEST_POSTGRES"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"


def _binaries() -> bool:
    if os.environ.get("PG_BIN"):
        return True
    return any(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")) or bool(shutil.which("pg_ctl"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[sa.URL]:
    """The URL of a server's maintenance database."""
    given = os.environ.get(POSTGRES_ENV)
    if given:
        yield sa.make_url(given)
        return
    if not _binaries():
        reason = f"no PostgreSQL: ${POSTGRES_ENV} is unset and no PostgreSQL binaries exist"
        if os.environ.get("DYNBENCH_REQUIRE_POSTGRES"):  # scripts/test.sh: never skip
            pytest.fail(reason)
        pytest.skip(reason)
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=120, check=True
    )
    folder, url = started.stdout.split()
    try:
        yield sa.make_url(url)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], timeout=60, check=False)


@pytest.fixture
def postgres_db(postgres_server: sa.URL) -> Iterator[str]:
    """A fresh database on the server, dropped after the test: its URL."""
    name = f"dynbench_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_db(request, tmp_path) -> str:
    """The same test against a SQLite file (a plain path, as users give it) and PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    return request.getfixturevalue("postgres_db")


def count(db: str, table: str = "measurements") -> int:
    """Rows in ``table`` of the store ``db`` (0 while it does not exist yet)."""
    url = db if "://" in db else f"sqlite:///{db}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    except sa.exc.DBAPIError:
        return 0
    finally:
        engine.dispose()
