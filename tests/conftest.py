"""Shared fixtures: run the CLI in-process and capture exit code and output."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from dynbench.cli import main
from dynbench.ops import base


@pytest.fixture(autouse=True)
def memory_not_kept(monkeypatch):
    """Each test starts with the route rule's default (memory not kept), whatever an earlier
    test's pin() did to this process; a test that pins gets the kept rule until it ends."""
    monkeypatch.setitem(base._MEMORY, "kept", False)


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
