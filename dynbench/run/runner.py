"""Runs a suite: builds each family once, applies each measure, stores every record.

Records are committed to the store the moment they exist, so an interrupted or
killed run keeps what it measured; Ctrl-C, SIGTERM or SIGHUP also write the partial
``--json`` file, mark the run 'interrupted' and say so in one line (the command then exits
128 + the signal's number: :mod:`dynbench.run.interrupt`). A model that fails (its builder or
its forward raises) gets an ``error`` record with the one-line message and the run
goes on with the other models; the outcome lists the failures. A failure that is no
model's (the store refuses a record, a worker process dies, a bug of the runner) ends
the run: it keeps what it stored, writes the partial ``--json`` file, is marked
'failed', and the exception goes on (:class:`RunFailed` for the first two).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dynbench.errors import one_line
from dynbench.measure.environment import all_cores, environment
from dynbench.models.identity import identity_settings
from dynbench.models.registry import zero_init
from dynbench.results.names import MACHINE_MODEL
from dynbench.results.record import Record, error_record
from dynbench.results.store import ResultStore
from dynbench.run.family import Member, Target, families
from dynbench.run.interrupt import stop_signals_deferred, stop_signals_interrupt, stopped_by
from dynbench.run.pool import Stamped, WorkerDied, in_workers
from dynbench.run.settings import RunSettings, StepSettings
from dynbench.run.shard import take_shard
from dynbench.run.steps import STEPS, FamilyStep, MachineStep, ModelStep, Step
from dynbench.run.suite import Suite


class RunFailed(Exception):
    """The run could not go on for a reason that is no model's: the store failed, or a
    worker process died; the message is one line and names the run and what it kept."""


class RunInterrupted(Exception):
    """A stop signal ended the run; the message is one line naming the signal, the run and
    what it kept, ``status`` the exit status a shell expects (128 + the signal's number).

    Not a KeyboardInterrupt: the command-line framework would turn that into its own exit
    status, whatever the signal was."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RunOutcome:
    run_id: str
    records: list[Record] = field(default_factory=list)
    status: str = "running"

    @property
    def failures(self) -> list[Record]:
        return [r for r in self.records if r.metric == "error"]


@contextmanager
def _storing(store: ResultStore, doing: str) -> Iterator[None]:
    """A failure of the store itself is :class:`RunFailed`, never a model's error record."""
    try:
        yield
    except Exception as exc:
        reason = one_line(exc, getattr(exc, "orig", None))
        raise RunFailed(f"the store {store.where} failed {doing} ({reason})") from exc


def write_json(path: Path, outcome: RunOutcome) -> None:
    """The records as a JSON list, whole or not at all: written beside ``path`` and moved
    over it, so a full disk or a kill half way never leaves a truncated file."""
    rows = [dict(r.as_dict(), run_id=outcome.run_id) for r in outcome.records]
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(json.dumps(rows, indent=1) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_suite(
    suite: Suite,
    targets: list[Target],
    store: ResultStore,
    json_path: Path | None = None,
    console: Console | None = None,
    shard: tuple[int, int] | None = None,
    machine_label: str | None = None,
    jobs: int | None = None,
    settings: RunSettings | None = None,
) -> RunOutcome:
    """Measure every target with every measure of the suite, family by family; with
    ``shard`` (i, N) only the i-th of N deterministic parts (see :mod:`dynbench.run.shard`).

    A suite of untimed measures (sizes) runs on ``jobs`` processes (default: one per
    core, see :mod:`dynbench.run.pool`); its records are stored in the same order.
    ``settings`` (default: the suite's own) are the run's, the command line's over the suite's."""
    console = console or Console(stderr=True)
    settings = settings or RunSettings.of(suite.settings)
    env = environment(machine_label)
    steps = [STEPS[name] for name in suite.measures]
    family_wise = any(isinstance(s, FamilyStep) and s.ratios for s in steps)
    groups = families(targets) if family_wise else [[t] for t in targets]
    if shard is not None:
        groups = take_shard(groups, [g[0].info.name for g in groups], *shard)
        env["shard"] = f"{shard[0]}/{shard[1]}"
    with _storing(store, "to record the start of the run"):
        outcome = RunOutcome(store.start_run(suite.name, env))

    def emit(record: Record, stamp: dict) -> None:
        stamped = {**stamp, **record.settings}
        record = dataclasses.replace(record, suite=suite.name, settings=stamped)
        with stop_signals_deferred(), _storing(store, f"to store a measurement of {record.model}"):
            store.add(outcome.run_id, record, env)
            outcome.records.append(record)

    def work(index: int) -> list[Stamped]:
        made: list[Stamped] = []
        _measure(suite, settings, steps, groups[index], lambda r, s: made.append((r, s)))
        return made

    jobs = min(jobs or all_cores(), len(groups))
    parallel = jobs > 1 and all(s.untimed for s in steps)
    machine_wide = [s for s in steps if isinstance(s, MachineStep)]
    steps = [s for s in steps if not isinstance(s, MachineStep)]
    # the workers are forked before the progress bar starts its refresh thread
    pool = in_workers(work, len(groups), jobs) if parallel else contextlib.nullcontext()
    try:
        with stop_signals_interrupt(), pool as results, progress_bar(console) as bar:
            total = sum(map(len, groups)) * len(steps) + len(machine_wide)
            task = bar.add_task(suite.name, total=total)
            for step in machine_wide:
                status = lambda t: bar.update(task, description=t)  # noqa: E731
                _measure_machine(suite.name, step, settings, emit, status)
                bar.advance(task)
            if results is not None:
                bar.update(task, description=f"{suite.name}: {jobs} processes")
                for index, made in results:
                    for record, settings in made:
                        emit(record, settings)
                    bar.advance(task, len(groups[index]) * len(steps))
            else:
                for group in groups:
                    _measure(
                        suite,
                        settings,
                        steps,
                        group,
                        emit,
                        lambda text: bar.update(task, description=f"{suite.name}: {text}"),
                        lambda models: bar.advance(task, models),
                    )
        outcome.status = "complete"
    except KeyboardInterrupt:
        outcome.status = "interrupted"
        signum = stopped_by()
        kept = _end(store, outcome, json_path, console)
        raise RunInterrupted(f"interrupted by {signum.name}: {kept}", 128 + signum) from None
    except (RunFailed, WorkerDied) as exc:  # no model's failure: one line says what and where
        outcome.status = "failed"
        reason = _died(exc, groups) if isinstance(exc, WorkerDied) else str(exc)
        raise RunFailed(f"{reason}; {_end(store, outcome, json_path, console)}") from exc
    except BaseException:  # a bug: its traceback follows, the run says it did not finish
        outcome.status = "failed"
        _end(store, outcome, json_path, console)
        raise
    _, problems = _finish(store, outcome, json_path)
    if problems:
        raise RunFailed("; ".join(problems))
    return outcome


def _end(store: ResultStore, outcome: RunOutcome, json_path: Path | None, console: Console) -> str:
    """End a run cut short: mark it, write its ``--json`` file, print on the console what of
    that failed (the error on its way out stays the one reported), and say what it kept."""
    marked, problems = _finish(store, outcome, json_path)
    if problems:
        console.print(f"also: {'; '.join(problems)}", markup=False, highlight=False)
    kept = f"run {outcome.run_id} kept {len(outcome.records)} measurements in {store.where}"
    return f"{kept} and is marked {outcome.status}" if marked else kept


def _finish(
    store: ResultStore, outcome: RunOutcome, json_path: Path | None
) -> tuple[bool, list[str]]:
    """Mark the run ended and write the ``--json`` file, each whatever becomes of the other:
    whether the store marked it, and the one-line reasons of what failed."""
    problems = []
    try:
        with _storing(store, "to mark the run finished"):
            store.finish_run(outcome.run_id, outcome.status, _now())
    except RunFailed as exc:
        problems.append(str(exc))
    marked = not problems
    if json_path is not None:
        try:
            write_json(json_path, outcome)
        except OSError as exc:
            problems.append(f"could not write {json_path} ({exc.strerror or exc})")
    return marked, problems


def _died(exc: WorkerDied, groups: list[list[Target]]) -> str:
    """The one-line reason of a dead worker, naming (the first few of) the models whose
    records never came: the dead worker's and those the broken pool dropped."""
    names = [t.info.name for index in exc.lost for t in groups[index]]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        "a worker process died (killed by a signal: out of memory, or a crash in native "
        f"code); not measured: {shown}"
    )


def _measure(
    suite: Suite,
    settings: RunSettings,
    steps: list[Step],
    group: list[Target],
    emit: Callable[[Record, dict], None],
    status: Callable[[str], None] = lambda text: None,
    done: Callable[[int], None] = lambda models: None,
) -> None:
    """Build one group and run every step on it; ``done(len(group))`` after each step."""
    names = ", ".join(t.info.name for t in group)
    status(f"building {names}")
    identities = {t.info.name: identity_settings(t.info) for t in group}
    emit = _with_identity(emit, identities)
    zero_weights = all(s.zero_weights for s in steps)
    members = _build(group, lambda r: emit(r, {}), zero_weights)
    for step in steps:
        title = f"{step.name} {names}"
        status(title)
        chosen = _chosen(suite, step, members)
        if chosen:
            _run_step(step, settings.for_step(step.settings), chosen, emit, status, title)
        done(len(group))


def _run_step(
    step: Step,
    settings: StepSettings,
    chosen: list[Member],
    emit: Callable[[Record, dict], None],
    status: Callable[[str], None],
    title: str,
) -> None:
    """One step on the chosen members: a model step on each in turn (a failure is that
    model's error record), a family step on them all (a failure is every member's)."""
    stamp = settings.stamped()
    if isinstance(step, ModelStep):
        for info, model in chosen:
            status(f"{title} ({info.name})")
            try:
                records = step.run(info, model, settings)
            except Exception as exc:  # the model's (or the user's) bug, not the run's
                records = [error_record(info.name, step.name, exc)]
            for record in records:
                emit(record, stamp)
        return
    assert isinstance(step, FamilyStep)
    try:
        step.run(chosen, settings, lambda r: emit(r, stamp), lambda s: status(f"{title} ({s})"))
    except RunFailed:
        raise
    except Exception as exc:  # the model's (or the user's) bug, not the run's
        for info, _ in chosen:
            emit(error_record(info.name, step.name, exc), {})


def _with_identity(
    emit: Callable[[Record, dict], None], identities: dict[str, dict]
) -> Callable[[Record, dict], None]:
    """``emit`` stamping a user model's family and operator into its records' settings
    (see :mod:`dynbench.models.identity`)."""
    if not any(identities.values()):
        return emit
    return lambda record, settings: emit(record, {**settings, **identities.get(record.model, {})})


def _measure_machine(
    suite: str,
    step: MachineStep,
    settings: RunSettings,
    emit: Callable[[Record, dict], None],
    status: Callable[[str], None],
) -> None:
    """A step measuring the machine itself, once per run; its failure is an error record."""
    resolved = settings.for_step(step.settings)
    stamp = resolved.stamped()
    try:
        step.run(
            resolved,
            lambda r: emit(r, stamp),
            lambda state: status(f"{suite}: {step.name} ({state})"),
        )
    except RunFailed:
        raise
    except Exception as exc:  # the step's bug, not the run's
        emit(error_record(MACHINE_MODEL, step.name, exc), {})


def _chosen(suite: Suite, step: Step, members: list[Member]) -> list[Member]:
    """The members ``step`` runs on (the suite's ``only``); a step of ratios keeps the
    family's baseline whenever it runs on a variant: its ratios need it."""
    chosen = [m for m in members if suite.measures_model(step.name, m[0].name)]
    baseline = members[0] if members and members[0][0].is_baseline else None
    ratios = isinstance(step, FamilyStep) and step.ratios
    if ratios and chosen and baseline is not None and baseline not in chosen:
        chosen.insert(0, baseline)
    return chosen


def _build(group: list[Target], emit_error, zero_weights: bool = False) -> list[Member]:
    """The group's models, built (with zero weights when no measure reads a weight's
    value: see :func:`dynbench.models.registry.zero_init`); one whose builder raises
    gets an error record instead."""
    members = []
    for target in group:
        try:
            with zero_init() if zero_weights else contextlib.nullcontext():
                members.append((target.info, target.build()))
        except Exception as exc:
            emit_error(error_record(target.info.name, "build", exc))
    return members


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


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
