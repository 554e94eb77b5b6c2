"""A run stopped by a signal, as a user or the OOM killer stops it: every record already
made stays, the run says it was interrupted, the exit status is the shell's 128 + signal,
and no worker process outlives the command."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess

import pytest

from dynbench.measure.environment import all_cores
from tests.processes import children, dynbench_process, still_alive_after, wait_for_rows

pytestmark = pytest.mark.wheel  # scripts/check-wheel.sh runs these with the wheel's command

MODELS = "resnet10,resnet18,resnet34,resnet50,resnet50_v1,resnet101,resnet101_v1"
TWO_CORES = pytest.mark.skipif(all_cores() < 2, reason="a pool needs two cores")


def _madds_run(tmp_path, jobs: int) -> tuple[subprocess.Popen, str]:
    db = str(tmp_path / "s.sqlite")
    proc = dynbench_process(
        "run", "--suite", "madds", "--models", MODELS, "--jobs", str(jobs), "--db", db,
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    return proc, db


def _status(db: str) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [row[0] for row in con.execute("SELECT status FROM runs")]
    finally:
        con.close()


@pytest.mark.parametrize(
    ("signum", "jobs", "status"),
    [
        pytest.param(signal.SIGINT, 2, 130, marks=TWO_CORES),
        pytest.param(signal.SIGTERM, 2, 143, marks=TWO_CORES),
        (signal.SIGTERM, 1, 143),
    ],
)
def test_a_stop_signal_keeps_what_was_stored_and_exits_128_plus_it(tmp_path, signum, jobs, status):
    proc, db = _madds_run(tmp_path, jobs)
    made = wait_for_rows(db, 3, proc)
    assert proc.poll() is None and made >= 3, "the run ended before the signal; proved nothing"
    workers = children(proc.pid)
    assert len(workers) == (jobs if jobs > 1 else 0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    match = re.fullmatch(
        rf"interrupted by {signum.name}: run (\w+) kept (\d+) measurements in \S+ "
        r"and is marked interrupted",
        lines[0],
    )
    assert match, lines[0]
    assert _status(db) == ["interrupted"]
    con = sqlite3.connect(db)
    stored = con.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    con.close()
    assert stored == int(match.group(2)) >= made
    assert still_alive_after(workers, 10) == []


@TWO_CORES
def test_sigkill_of_the_parent_ends_its_workers(tmp_path):
    """The OOM killer's SIGKILL cannot be caught: the workers end by the death signal the
    kernel sends them when their parent dies."""
    proc, db = _madds_run(tmp_path, 2)
    wait_for_rows(db, 1, proc)
    workers = children(proc.pid)
    assert proc.poll() is None and len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert still_alive_after(workers, 10) == []
    assert _status(db) == ["running"]  # nothing could mark it: the kill left no chance
