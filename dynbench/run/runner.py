"""Runs a suite: builds each model once, applies each measure, stores every record.

Records are committed to the store the moment they exist, so an interrupted or
killed run keeps what it measured; Ctrl-C or SIGTERM also write the partial
``--json`` file and mark the run 'interrupted'.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from dynbench.measure.environment import environment
from dynbench.models.registry import ModelInfo
from dynbench.results.store import Record, ResultStore
from dynbench.run.measures import MEASURES
from dynbench.run.suite import Suite


@dataclass
class Target:
    """A model to measure: registry metadata and, for a user model, the instance."""

    info: ModelInfo
    instance: nn.Module | None = None

    def build(self) -> nn.Module:
        model = self.instance if self.instance is not None else self.info.builder()
        return model.eval()


@dataclass
class RunOutcome:
    run_id: str
    records: list[Record] = field(default_factory=list)
    status: str = "running"


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_json(path: Path, outcome: RunOutcome) -> None:
    rows = [dict(r.as_dict(), run_id=outcome.run_id) for r in outcome.records]
    path.write_text(json.dumps(rows, indent=1) + "\n")


def run_suite(
    suite: Suite,
    targets: list[Target],
    store: ResultStore,
    json_path: Path | None = None,
    console: Console | None = None,
) -> RunOutcome:
    """Measure every target with every measure of the suite."""
    console = console or Console(stderr=True)
    env = environment()
    outcome = RunOutcome(store.start_run(suite.name, env))
    per_model = [m for m in suite.measures if not MEASURES[m].grouped]
    grouped = [m for m in suite.measures if MEASURES[m].grouped]
    steps = len(targets) * len(suite.measures)
    try:
        with _sigterm_as_interrupt(), progress_bar(console) as bar:
            task = bar.add_task(suite.name, total=steps)

            def emit(record: Record, settings: dict) -> None:
                record.suite = suite.name
                record.settings = {**settings_for_record(settings), **record.settings}
                store.add(outcome.run_id, record, env)
                outcome.records.append(record)

            for target in targets if per_model else []:
                bar.update(task, description=f"{suite.name}: building {target.info.name}")
                model = target.build()
                for name in per_model:
                    measure = MEASURES[name]
                    bar.update(task, description=f"{suite.name}: {name} {target.info.name}")
                    settings = measure.resolved(suite.settings)
                    for record in measure.run(target.info, model, settings):
                        emit(record, settings)
                    bar.advance(task)
                del model
            for name in grouped:
                measure = MEASURES[name]
                settings = measure.resolved(suite.settings)
                for family in families(targets):
                    names = ", ".join(t.info.name for t in family)
                    title = f"{suite.name}: {name} {names}"
                    bar.update(task, description=title)
                    members = [(t.info, t.build()) for t in family]
                    measure.run_group(
                        members,
                        settings,
                        lambda r, s=settings: emit(r, s),
                        lambda status, t=title: bar.update(task, description=f"{t} ({status})"),
                    )
                    bar.advance(task, len(family))
        outcome.status = "complete"
    except KeyboardInterrupt:
        outcome.status = "interrupted"
        console.print(
            f"[yellow]interrupted: kept {len(outcome.records)} measurements of run "
            f"{outcome.run_id} in {store.path}[/]"
        )
        raise
    finally:
        store.finish_run(outcome.run_id, outcome.status, _now())
        if json_path is not None:
            write_json(json_path, outcome)
    return outcome


def progress_bar(console: Console) -> Progress:
    """The bar every long command shows: step, bar, done/total, elapsed."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def families(targets: list[Target]) -> list[list[Target]]:
    """Targets grouped by family, each family led by its static baseline.

    A family whose baseline was not selected gets it added: ratios need it.
    """
    from dynbench.models.registry import _REGISTRY

    groups: dict[str, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.info.family, []).append(target)
    ordered = []
    for family, members in groups.items():
        baseline = [t for t in members if t.info.name == family]
        rest = [t for t in members if t.info.name != family]
        if not baseline and family in _REGISTRY:
            baseline = [Target(_REGISTRY[family])]
        ordered.append(baseline + rest)
    return ordered


def settings_for_record(settings: dict) -> dict:
    """The settings worth storing: everything that was set to something."""
    return {k: v for k, v in settings.items() if v is not None}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
