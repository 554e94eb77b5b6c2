"""A password given in ``--db`` reaches no record, export, merged copy or report, and a store
written before that rule gives none of its passwords away either."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest
import sqlalchemy as sa

from tests.processes import dynbench_process


def _dynbench(tmp_path, *args: str) -> subprocess.CompletedProcess:
    proc = dynbench_process(
        *args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={"PGPASSWORD": "envsecret"},
    )  # fmt: skip
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _everything_in(db_url: str) -> str:
    """Every value of every row of the store, as one text (what a dump would show)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = [
                *conn.execute(sa.text("SELECT * FROM runs")),
                *conn.execute(sa.text("SELECT * FROM measurements")),
            ]
    finally:
        engine.dispose()
    return "\n".join(map(str, rows))


@pytest.mark.wheel
def test_a_store_password_is_never_stored_printed_exported_or_rendered(postgres_db, tmp_path):
    password = sa.make_url(postgres_db).password
    run = _dynbench(tmp_path, "run", "--suite", "params", "--models", "resnet10", "--db",
                    postgres_db, "--json", "r.json")  # fmt: skip
    assert password not in run.stdout + run.stderr
    stored = _everything_in(postgres_db)
    assert "resnet10" in stored and "--db postgresql+psycopg://dynbench:***@" in stored
    assert password not in stored
    assert password not in (tmp_path / "r.json").read_text()
    for form in ("json", "csv"):
        assert password not in _dynbench(tmp_path, "export", "--format", form, "--db",
                                          postgres_db).stdout  # fmt: skip
    _dynbench(tmp_path, "merge", str(tmp_path / "copy.sqlite"), postgres_db)
    assert password.encode() not in (tmp_path / "copy.sqlite").read_bytes()
    _dynbench(tmp_path, "report", "--db", postgres_db, "--out", "out")
    for page in ("report.md", "report.html"):
        assert password not in (tmp_path / "out" / page).read_text()


def test_a_store_written_before_the_rule_gives_no_password_away(cli, tmp_path):
    db = tmp_path / "old.sqlite"
    assert cli("run", "--suite", "params", "--models", "resnet10", "--db", str(db)).code == 0
    leaked = "run --db postgresql://bob:oldsecret@host/db PGPASSWORD=oldsecret"
    con = sqlite3.connect(db)
    for table in ("runs", "measurements"):
        for (text,) in con.execute(f"SELECT environment FROM {table}").fetchall():
            environment = dict(json.loads(text), argv=leaked)
            con.execute(f"UPDATE {table} SET environment = ?", (json.dumps(environment),))
    con.commit()
    con.close()
    assert b"oldsecret" in db.read_bytes()
    exported = cli("export", "--format", "json", "--db", str(db)).stdout
    assert "oldsecret" not in exported and "bob:***@host" in exported
    assert cli("merge", str(tmp_path / "copy.sqlite"), str(db)).code == 0
    assert b"oldsecret" not in (tmp_path / "copy.sqlite").read_bytes()
    assert cli("report", "--db", str(db), "--out", "out", "--format", "md").code == 0
    assert "oldsecret" not in (tmp_path / "out" / "report.md").read_text()
