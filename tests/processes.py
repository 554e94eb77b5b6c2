"""The dynbench command as a separate process, and the processes it leaves.

``DYNBENCH_BIN`` names the command to run (scripts/check-wheel.sh points it at the wheel's
``dynbench`` in a fresh virtual environment); by default it is this checkout's package
under the interpreter running the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.results.conftest import count as rows_in


def dynbench_process(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    """``dynbench ARGS`` started in ``cwd`` with no store named by the environment."""
    env = dict(os.environ)
    env.pop("DYNBENCH_DB", None)
    env.update(kwargs.pop("env", {}))
    command = [os.environ["DYNBENCH_BIN"]] if os.environ.get("DYNBENCH_BIN") else None
    command = command or [sys.executable, "-m", "dynbench"]
    return subprocess.Popen([*command, *args], cwd=cwd, env=env, text=True, **kwargs)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc; zombies are not alive)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def still_alive_after(pids: list[int], seconds: float) -> list[int]:
    """The processes of ``pids`` still running ``seconds`` from now (polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def wait_for_rows(db: str, rows: int, proc: subprocess.Popen, seconds: float = 180) -> int:
    """Poll until the store holds ``rows`` measurements (or the process ended)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        count = rows_in(db)
        if count >= rows:
            return count
        time.sleep(0.2)
    return rows_in(db)
