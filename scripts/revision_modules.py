"""Modules of this repository as they were at a git revision, loaded beside today's code.

The before/after scripts time an operator's old code and its new code in one process. The
modules a pattern names are loaded from ``git show REVISION:PATH``, each importing the
others' old versions (their ``from dynbench.X import`` lines are rewritten); every other
import resolves to today's package.
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the name prefix of every module loaded from a revision (``before_dynbench_ops_odconv``)
PREFIX = "before_"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def modules_at(revision: str, pattern: str) -> dict[str, types.ModuleType]:
    """Every tracked ``dynbench/**.py`` file whose path matches ``pattern`` (a full match) as
    it was at ``revision``, keyed by its dotted name (``dynbench.ops.odconv``)."""
    paths = _git("ls-tree", "--name-only", "-r", revision, "dynbench").split()
    dotted = {p[:-3].replace("/", "."): p for p in paths if re.fullmatch(pattern, p)}
    if not dotted:
        raise SystemExit(f"no file at {revision} matches {pattern}")
    loaded: dict[str, types.ModuleType] = {}
    while len(loaded) < len(dotted):
        progress = len(loaded)
        for name, path in dotted.items():
            if name in loaded:
                continue
            source = _git("show", f"{revision}:{path}")
            needs = [
                d
                for d in dotted
                if d != name and re.search(rf"^from {re.escape(d)} import", source, re.M)
            ]
            if any(d not in loaded for d in needs):
                continue
            for dep in needs:
                alias = PREFIX + dep.replace(".", "_")
                sys.modules[alias] = loaded[dep]
                source = re.sub(
                    rf"^from {re.escape(dep)} import", f"from {alias} import", source, flags=re.M
                )
            module = types.ModuleType(PREFIX + name.replace(".", "_"))
            sys.modules[module.__name__] = module
            exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
            loaded[name] = module
        if len(loaded) == progress:
            raise RuntimeError(f"the modules at {revision} import each other: {sorted(dotted)}")
    return loaded
