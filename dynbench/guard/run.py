"""Measure the selected models' size figures and judge them against a baseline."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from dynbench.guard import baseline as baseline_file
from dynbench.guard.check import GuardResult, compare
from dynbench.guard.counts import size_figures
from dynbench.run.family import Target
from dynbench.run.runner import progress_bar


def current_figures(targets: list[Target], console: Console) -> dict[str, dict]:
    """{name: {params, params_no_classifier, madds, input_size}} for every target."""
    current: dict[str, dict] = {}
    with progress_bar(console) as bar:
        task = bar.add_task("guard", total=len(targets))
        for target in targets:
            bar.update(task, description=f"guard: {target.info.name}")
            if target.instance is not None:
                figures = size_figures(lambda t=target: t.instance, target.info.input_size)
            else:
                figures = size_figures(target.info.builder, target.info.input_size)
            current[target.info.name] = {**figures, "input_size": list(target.info.input_size)}
            bar.advance(task)
    return current


def guard(
    targets: list[Target],
    baseline: Path,
    tolerance_pct: float,
    selected_only: bool,
    update: bool,
    console: Console,
) -> tuple[GuardResult, dict[str, dict]]:
    """Compare the targets with ``baseline``; with ``update``, rewrite it with them.

    ``selected_only``: only some models were chosen, so the others are not 'removed'
    (and an update keeps their baseline entries). Returns the result and the figures.
    """
    old = baseline_file.load(baseline) if not update or baseline.exists() else {}
    started = time.perf_counter()
    current = current_figures(targets, console)
    result = compare(old, current, tolerance_pct, selected_only)
    result.seconds = time.perf_counter() - started
    if update:
        baseline_file.save(baseline, {**old, **current} if selected_only else current)
    return result, current
