"""The store behind a path or a URL, the same tests on SQLite and on a real PostgreSQL:
concurrent writers, SIGKILL part way, bad URLs, schema versions, merging."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dynbench.errors import DynbenchError
from dynbench.results.merge import merge
from dynbench.results.names import COUNTERS
from dynbench.results.record import Record
from dynbench.results.schema import SCHEMA_VERSION
from dynbench.results.store import ResultStore, load_results
from tests.processes import children, dynbench_process, still_alive_after
from tests.results.conftest import count

# A store written by dynbench before the URLs (schema version 1): reports/latency/runs.sqlite
# as committed until c8aa2e3 re-measured it, kept here so that the tests own their fixture.
LEGACY = Path(__file__).resolve().parent / "legacy-v1.sqlite"


def _record(model: str, value: float) -> Record:
    return Record(model=model, metric="params", value=value, method="count", suite="t")


def test_round_trip_keeps_exact_values(store_db):
    env = {"timestamp": "2026-01-01T00:00:00+00:00", "cpu": "x"}
    with ResultStore(store_db) as store:
        assert store.version == SCHEMA_VERSION
        run = store.start_run("t", env)
        store.add(run, _record("resnet18", 11_689_512), env)
        store.add(run, Record(model="m", metric="error", value=None, method="build"), env)
        store.finish_run(run, "complete", "2026-01-01T00:01:00+00:00")
    frame = load_results(store_db)
    assert frame["value"].iloc[0] == 11_689_512
    assert frame["value"].isna().iloc[1]
    assert json.loads(frame["environment"].iloc[0]) == env
    assert count(store_db, "runs") == 1


def test_two_processes_write_at_once_and_report_renders(store_db, tmp_path):
    runs = [
        dynbench_process(
            "run",
            "--suite",
            "params",
            "--models",
            models,
            "--db",
            store_db,
            "--machine-label",
            label,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for models, label in (("resnet18,resnet34", "one"), ("resnet10,resnet50", "two"))
    ]
    for proc in runs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    frame = load_results(store_db)
    assert len(frame) == 12  # 3 parameter counts of 4 models: nothing lost
    assert set(frame["run_id"].value_counts()) == {6}
    labels = {json.loads(e)["machine_label"] for e in frame["environment"]}
    assert labels == {"one", "two"}
    report = dynbench_process(
        "report",
        "--db",
        store_db,
        "--out",
        str(tmp_path / "out"),
        "--format",
        "md",
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert report.wait(timeout=300) == 0, report.stderr.read()
    assert "11,689,512" in (tmp_path / "out" / "report.md").read_text()


def test_sigkill_keeps_completed_rows(store_db, tmp_path):
    models = "resnet10,resnet18,resnet34,resnet50,resnet50_v1,resnet101,resnet101_v1"
    proc = dynbench_process(
        "run",
        "--suite",
        "madds",
        "--models",
        models,
        "--db",
        store_db,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and count(store_db) < len(COUNTERS):
        time.sleep(0.2)
    workers = children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert still_alive_after(workers, 10) == [], "a pool worker outlived its parent"
    kept = count(store_db)
    counters = len(COUNTERS)
    assert kept >= counters, "no rows were committed before the kill"
    assert kept < 7 * (counters + 1), "the run finished before it was killed; proved nothing"
    frame = load_results(store_db)
    per_model = frame.groupby("model").size()
    assert (per_model == counters + 1).any(), "the first model's counters are all kept"
    again = dynbench_process(
        "run",
        "--suite",
        "params",
        "--models",
        "resnet18",
        "--db",
        store_db,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert again.wait(timeout=120) == 0, again.stderr.read()
    assert count(store_db) == kept + 3
    assert count(store_db, "runs") == 2


def test_wrong_password_is_one_line_exit_2(postgres_db, cli):
    wrong = sa.make_url(postgres_db).set(password="not-the-password")
    start = time.monotonic()
    result = cli("export", "--db", wrong.render_as_string(hide_password=False))
    assert result.code == 2
    assert time.monotonic() - start < 10
    assert result.stderr.startswith("error: cannot open database postgresql+psycopg://")
    assert "password authentication failed" in result.stderr
    assert "not-the-password" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_host_fails_within_seconds(cli):
    # 192.0.2.1 is TEST-NET-1: never routed, so only the connect timeout ends the wait
    start = time.monotonic()
    result = cli("run", "--suite", "params", "--db", "postgresql+psycopg://u:p@192.0.2.1:5432/db")
    assert result.code == 2
    assert time.monotonic() - start < 15
    assert result.stderr.startswith("error: cannot open database postgresql+psycopg://u:***@")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("postgres://u:p@h/db", "no database driver"),
        ("mysql+nosuchdriver://u:p@h/db", "no database driver"),
        ("sqlite:////nonexistent-dir/x.db", "not writable"),
    ],
)
def test_bad_urls_are_one_line_errors(cli, db, message):
    result = cli("run", "--suite", "params", "--models", "resnet10", "--db", db)
    assert result.code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_newer_schema_version_is_refused(store_db, cli):
    with ResultStore(store_db) as store, store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE dynbench_meta SET value = '99'"))
    for args in (("export", "--db", store_db), ("run", "--suite", "params", "--db", store_db)):
        result = cli(*args)
        assert result.code == 2
        assert "schema version 99, newer than this dynbench's 2" in result.stderr
    with pytest.raises(DynbenchError, match="upgrade dynbench"):
        load_results(store_db)


def test_a_store_of_the_first_version_is_read_as_is_and_migrated_when_written(tmp_path, cli):
    db = tmp_path / "old.sqlite"
    shutil.copy(LEGACY, db)
    before = load_results(LEGACY)
    assert len(before) == 68
    with ResultStore(db, write=False) as store:
        assert store.version == 1
        _, rows_before = store.dump()
    assert cli("report", "--db", str(db), "--out", "r", "--format", "md").code == 0
    assert cli("run", "--suite", "params", "--models", "resnet10", "--db", str(db)).code == 0
    with ResultStore(db, write=False) as store:
        assert store.version == SCHEMA_VERSION
        _, rows_after = store.dump()
    assert len(rows_after) == 68 + 3
    # the migration gave the old rows the uids a read-only reading derives: merge agrees
    assert [r["uid"] for r in rows_after[:68]] == [r["uid"] for r in rows_before]
    after = load_results(db)
    assert after.iloc[:68]["value"].tolist() == before["value"].tolist()


def test_merge_twice_changes_nothing(store_db, tmp_path, cli):
    a, b = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    assert cli("run", "--suite", "params", "--models", "resnet10", "--db", a).code == 0
    assert cli("run", "--suite", "params", "--models", "resnet18,resnet34", "--db", b).code == 0
    result = cli("merge", store_db, a, b, str(LEGACY))
    assert result.code == 0, result.stderr
    assert "68 measurements and 2 runs added" in result.stderr
    assert count(store_db) == 3 + 6 + 68
    assert count(store_db, "runs") == 4
    again = cli("merge", store_db, a, b, str(LEGACY), store_db)
    assert again.code == 0, again.stderr
    assert count(store_db) == 3 + 6 + 68
    assert "0 measurements and 0 runs added, 68 already in" in again.stderr
    merged = load_results(store_db)
    params = merged[merged["metric"] == "params"].set_index("model")["value"]
    assert params["resnet18"] == 11_689_512


def test_merging_a_run_again_after_it_ended_records_its_end(tmp_path):
    env = {"timestamp": "2026-11-30T07:00:00+00:00"}
    with (
        ResultStore(tmp_path / "src.sqlite") as source,
        ResultStore(tmp_path / "out.sqlite") as out,
    ):
        run = source.start_run("t", env)
        source.add(run, _record("a", 1.0), env)
        assert (merge(out, source).measurements, merge(out, source).ended) == (1, 0)
        source.add(run, _record("b", 2.0), env)
        source.finish_run(run, "complete", "2026-11-30T07:05:00+00:00")
        done = merge(out, source)
        assert (done.runs, done.ended, done.measurements, done.known) == (0, 1, 1, 1)
        with out.engine.begin() as conn:
            row = conn.execute(sa.text("SELECT status, finished FROM runs")).one()
        assert tuple(row) == ("complete", "2026-11-30T07:05:00+00:00")
        assert merge(out, source).ended == 0  # an ended run is not ended again


def test_merge_of_a_migrated_copy_adds_nothing(tmp_path):
    old, migrated = tmp_path / "old.sqlite", tmp_path / "migrated.sqlite"
    shutil.copy(LEGACY, old)
    shutil.copy(LEGACY, migrated)
    ResultStore(migrated).close()  # opened for writing: migrated
    with ResultStore(migrated) as out, ResultStore(old, write=False) as source:
        done = merge(out, source)
    assert (done.measurements, done.known) == (0, 68)


def test_wal_switch_waits_for_another_connection_then_gives_up(tmp_path):
    """Switching to WAL while another connection holds the file: SQLite refuses at once,
    so the switch retries until the holder lets go, and fails after its wait."""
    import sqlite3
    import threading

    from dynbench.results.store import _set_wal

    path = tmp_path / "held.sqlite"
    holder = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _set_wal(other, wait_s=0.1)
    threading.Timer(0.2, lambda: holder.execute("COMMIT")).start()
    _set_wal(other, wait_s=5)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reading_a_store_leaves_its_file_as_it_is(tmp_path, cli):
    """export and report open a store to read it: a file in rollback-journal mode (as the
    reference store ships, vacuumed) keeps every byte; only a writer switches it to WAL."""
    db = tmp_path / "r.sqlite"
    assert cli("run", "--suite", "params", "--models", "resnet10", "--db", str(db)).code == 0
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    before = db.read_bytes()
    assert cli("export", "--db", str(db)).code == 0
    assert cli("report", "--db", str(db), "--out", "out", "--format", "md").code == 0
    assert db.read_bytes() == before
    assert cli("run", "--suite", "params", "--models", "resnet10", "--db", str(db)).code == 0
    assert db.read_bytes()[18:20] == b"\x02\x02"  # the writer's WAL mode
