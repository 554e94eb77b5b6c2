"""Fixtures the operator tests share."""

from __future__ import annotations

import os

import pytest

from dynbench.ops import compiled


@pytest.fixture
def switched_on(monkeypatch):
    """The compiled loops on (the test session switches them off), built; a machine without
    a compiler skips, but not CI, whose image has one."""
    monkeypatch.setenv(compiled.SWITCH, "1")
    if compiled.built() is None:
        if os.environ.get("CI"):
            pytest.fail("the compiled loops did not build in CI")
        pytest.skip("no C++ toolchain for the compiled loops here")
