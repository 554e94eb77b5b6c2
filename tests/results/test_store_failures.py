"""A store that fails under a run, as shared stores do: a PostgreSQL server that goes away, a
full disk, a damaged or truncated file. Each ends in one line, keeps every measurement
committed before, and leaves nothing half-written. (A store of a newer schema is refused:
tests/results/test_store.py.)"""

from __future__ import annotations

import dataclasses
import json
import resource
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from dynbench.results.record import Record
from dynbench.results.store import ResultStore
from tests.processes import dynbench_process, wait_for_rows
from tests.results.conftest import SCRIPT, count

MODELS = "resnet10,resnet18,resnet34,resnet50,resnet50_v1,resnet101,resnet101_v1"


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def own_server(postgres_server):
    """A server of this test's own (the shared one must not go away): (folder, URL)."""
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=120, check=True
    )
    folder, url = started.stdout.split()
    try:
        yield folder, url
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], timeout=60, check=False)


def test_a_server_that_goes_away_mid_run_ends_it_in_one_line_and_keeps_what_it_had(
    own_server, tmp_path
):
    folder, url = own_server
    proc = dynbench_process(
        "run", "--suite", "madds", "--models", MODELS, "--jobs", "1", "--db", url,
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    made = wait_for_rows(url, 6, proc)
    assert proc.poll() is None, "the run ended before the server went away; proved nothing"
    subprocess.run(["bash", str(SCRIPT), "crash", folder], timeout=60, check=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    line = _error_line(err)
    assert "failed to store a measurement of" in line and "OperationalError" in line
    assert url.split(":")[2].split("@")[0] not in err, "the password was printed"
    subprocess.run(["bash", str(SCRIPT), "restart", folder], timeout=60, check=True)
    with ResultStore(url, write=False) as store:
        frame, runs = store.frame(), store.runs()
    assert len(frame) >= made and f"kept {len(frame)} measurements" in line
    assert frame["value"].notna().all() and (frame["unit"] != "").all()  # whole rows only
    assert list(runs["status"]) == ["running"]  # the server was gone when the run ended


def _full_disk(folder: Path) -> callable:
    """Make ``folder`` a 256 KiB file system (root may mount a tmpfs); elsewhere limit the
    size of every file the run writes to 256 KiB, which fails a write the same way."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode == 0:
        return lambda: None

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    return limit


def test_a_full_disk_ends_the_run_in_one_line_and_leaves_no_half_written_file(tmp_path):
    full = tmp_path / "full"
    limit = _full_disk(full)
    db, json_path = full / "s.sqlite", full / "r.json"
    try:
        proc = dynbench_process(
            "run", "--suite", "madds", "--models", "*", "--jobs", "1", "--db", str(db),
            "--json", str(json_path), cwd=tmp_path, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=limit,
        )  # fmt: skip
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 1
        line = _error_line(err)
        assert "failed to store a measurement of" in line
        assert "full" in line or "I/O" in line, line
        kept = count(str(db))
        assert kept > 0 and f"kept {kept} measurements" in line
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        con.close()
        written = [p.name for p in full.iterdir() if "json" in p.name]
        if written:  # written whole, or not at all
            assert written == ["r.json"] and len(json.loads(json_path.read_text())) == kept
    finally:
        subprocess.run(["umount", str(full)], capture_output=True)


def _store_with_rows(tmp_path: Path) -> Path:
    """A store of 400 measurements (many pages), checkpointed into its one file."""
    db = tmp_path / "s.sqlite"
    env = {"timestamp": "2026-01-01T00:00:00+00:00", "argv": "run"}
    with ResultStore(db) as store:
        run = store.start_run("params", env)
        for index in range(400):
            record = Record(model=f"m{index}", metric="params", value=index, method="count")
            store.add(run, dataclasses.replace(record, suite="params"), env)
        store.finish_run(run, "complete", env["timestamp"])
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return db


def _damage_pages(db: Path) -> None:
    """Overwrite the middle third of the file: table and index pages, not the schema."""
    size = db.stat().st_size
    with open(db, "r+b") as file:
        file.seek(size // 3)
        file.write(b"\xff" * (size // 3))


def _truncate(db: Path) -> None:
    with open(db, "r+b") as file:
        file.truncate(db.stat().st_size // 3)


@pytest.mark.parametrize("damage", [_damage_pages, _truncate])
def test_a_damaged_or_truncated_store_is_one_line_for_every_command(cli, tmp_path, damage):
    db = _store_with_rows(tmp_path)
    damage(db)
    before = db.read_bytes()
    commands = [
        ("run", "--suite", "params", "--models", "resnet10", "--db", str(db)),
        ("export", "--db", str(db)),
        ("report", "--db", str(db), "--out", "out", "--format", "md"),
        ("merge", str(tmp_path / "copy.sqlite"), str(db)),
    ]
    for args in commands:
        result = cli(*args)
        assert result.code == 2, (args, result.stderr)
        line = _error_line(result.stderr)
        assert "s.sqlite" in line and ("damaged" in line or "not a usable" in line), line
    assert db.read_bytes() == before, "a command wrote into the damaged store"
