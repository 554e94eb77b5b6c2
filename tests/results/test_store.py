"""A run killed with SIGKILL part way keeps its committed rows; the next run works."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from dynbench.results.names import COUNTERS


def _rows(db) -> int:
    try:
        con = sqlite3.connect(db, timeout=10)
        try:
            return con.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def test_sigkill_keeps_completed_rows(tmp_path):
    db = tmp_path / "kill.sqlite"
    env = dict(os.environ, DYNBENCH_DB=str(db))
    models = "resnet10,resnet18,resnet34,resnet50,resnet50_v1,resnet101,resnet101_v1"
    cmd = [sys.executable, "-m", "dynbench", "run", "--suite", "madds", "--models", models]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and _rows(db) < len(COUNTERS):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = _rows(db)
    counters = len(COUNTERS)
    assert kept >= counters, "no rows were committed before the kill"
    proved = "the run finished before it was killed; the test proved nothing"
    assert kept < 7 * (counters + 1), proved
    con = sqlite3.connect(db)
    assert con.execute("SELECT status FROM runs").fetchall() == [("running",)]
    complete_models = con.execute(
        "SELECT model FROM measurements GROUP BY model HAVING COUNT(*) = ?",
        (counters + 1,),  # and the weight bytes per image
    ).fetchall()
    assert complete_models, "the first model's counters are all kept"
    con.close()
    again = subprocess.run(
        [sys.executable, "-m", "dynbench", "run", "--suite", "params", "--models", "resnet18"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert _rows(db) == kept + 3
