"""Shared fixtures: run the CLI in-process and capture exit code and output; and a check
at the end of the session that no process the tests started is still running."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from dynbench.cli import main
from dynbench.measure import allocator
from tests.processes import alive

# set in this session's environment: every process the tests start inherits it
SESSION_MARK = "DYNBENCH_TEST_SESSION"


def pytest_sessionstart(session) -> None:
    os.environ[SESSION_MARK] = uuid.uuid4().hex
    # the compiled loops (ODConv's attention, the mask unit's logits) stay off in every test
    # but theirs (tests/ops/test_compiled*.py switch them on), so that a test's record does
    # not depend on whether this machine can build them, nor on the caller's environment
    os.environ["DYNBENCH_COMPILED"] = "0"


def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail the session if a process it started outlived it (a pool worker whose parent was
    killed, a server, a browser), naming each, and end them."""
    left = _started_here(f"{SESSION_MARK}={os.environ.get(SESSION_MARK)}".encode())
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
    for pid, command in left:
        if reporter is not None:
            reporter.write_line(f"left running by the tests: pid {pid}: {command}", red=True)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _started_here(mark: bytes) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes, other than this one, carrying ``mark``."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        pid = int(folder.name)
        try:
            carries = mark in (folder / "environ").read_bytes().split(b"\0")
            command = (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if carries and pid != os.getpid() and alive(pid):
            found.append((pid, command.strip()[:200]))
    return found


@pytest.fixture(autouse=True)
def allocator_as_started(monkeypatch):
    """Each test starts told what a fresh process is told, the allocator not pinned (so
    the runner routes the kernel-mixing convs for it), whatever an earlier test's pin()
    did to this process; a test that pins is told so until it ends."""
    monkeypatch.setitem(allocator._state, "allocator", "system")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """cli('run', '--suite', 'params') -> CliResult, run in a temporary directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DYNBENCH_DB", raising=False)

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["dynbench", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
