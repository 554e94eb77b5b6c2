"""The ``dynbench`` command line: list, run, inspect, export, report, compare, merge, guard.

Every user error is a :class:`DynbenchError` (or a usage error from the
parser) and ends as one line on stderr with exit code 2; nothing is written to
the results store before the input has been validated. A run that fails for a
reason that is no model's (the store, a dead worker process) ends as one line with
exit code 1, keeping what it stored.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import torch
import typer
from rich.console import Console

from dynbench import cli_options as o
from dynbench.errors import DynbenchError, one_line
from dynbench.guard.baseline import DEFAULT_BASELINE
from dynbench.guard.render import json_summary, markdown_summary, print_check, print_update
from dynbench.guard.run import guard
from dynbench.measure.breakdown import inspect_model
from dynbench.measure.environment import all_cores
from dynbench.models import load_user_model, model_info
from dynbench.models.identity import stored_models
from dynbench.models.listing import models_frame
from dynbench.models.registry import ModelInfo, parse_input_size
from dynbench.models.user_operator import load_operator, registered
from dynbench.redact import redact
from dynbench.report import compare_runs, terminal
from dynbench.report.inputs import check_stored, report_frame, require_db
from dynbench.report.terminal import rich_table
from dynbench.results.merge import merge
from dynbench.results.store import ResultStore, check_writable
from dynbench.run.family import guard_targets, run_targets
from dynbench.run.pool import check_jobs
from dynbench.run.runner import RunFailed, RunInterrupted, run_suite
from dynbench.run.shard import parse_shard
from dynbench.run.suite import check_only, cuda_missing, load_suite, run_settings, suites_frame

# typer's usage errors derive from a ClickException (vendored in newer typer, click's in older).
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure params, MAdds and speed of dynamic convolutions beside the papers' numbers.",
)
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


@app.command("list")
def list_command(
    pattern: Annotated[str, typer.Argument(help="glob, e.g. 'resnet18*'")] = "*",
    operator: Annotated[str | None, typer.Option(help="only this operator, e.g. odconv")] = None,
) -> None:
    """List registered models."""
    frame = models_frame(pattern, operator)
    out.print(rich_table(frame, title=f"{len(frame)} models"))


@app.command("suites")
def suites_command() -> None:
    """List the suites that --suite accepts by name."""
    out.print(rich_table(suites_frame()))


@app.command("run")
def run_command(
    suite: o.SuiteName = "default",
    models: o.Models = None,
    model: o.UserModels = None,
    json_path: o.RecordsJson = None,
    db: o.Db = None,
    input_size: o.RunInputSize = None,
    counters: o.Counters = None,
    shard: o.Shard = None,
    machine_label: o.MachineLabel = None,
    compile: o.Compile = None,
    compile_mode: o.CompileMode = None,
    dtype: o.Dtype = None,
    channels_last: o.ChannelsLast = None,
    threads: o.Threads = None,
    jobs: o.Jobs = None,
    baseline: o.Baseline = None,
    operator: o.Operator = None,
    operator_name: o.OperatorName = None,
    placement: o.Placement = "blocks",
    verbose: o.Verbose = False,
) -> None:
    """Run a suite and store every measurement."""
    the_suite = load_suite(suite)
    timing = {"compile": compile, "compile_mode": compile_mode, "dtype": dtype}
    timing |= {"channels_last": channels_last, "threads": threads}
    settings = run_settings(the_suite, timing, parse_input_size(input_size), counters)
    parts = parse_shard(shard) if shard is not None else None
    if jobs is not None:
        check_jobs(jobs, all_cores())
    user_operator = load_operator(operator, operator_name, placement) if operator else None
    with registered(user_operator) if user_operator else contextlib.nullcontext([]) as names:
        suite_models = (the_suite.models, the_suite.exclude, the_suite.families)
        targets = run_targets(*suite_models, models, model, baseline, names)
        check_only(the_suite, [t.info.name for t in targets])
        if skipped := cuda_missing(the_suite):
            err.print(skipped)
            return
        if json_path is not None:
            check_writable(json_path, "--json path")
        with ResultStore(db) as store:
            run = (store, json_path, err, parts, machine_label, jobs, settings)
            outcome = run_suite(the_suite, targets, *run)
        records = pd.DataFrame([r.as_dict() for r in outcome.records])
        with stored_models(records.get("model", []), records.get("settings", [])):
            terminal.print_summary(out, records, the_suite.name, verbose)
        if the_suite.compare == "published" and verbose:
            terminal.print_published_comparison(out, records)
        err.print(
            f"run {outcome.run_id}: {len(outcome.records)} measurements stored in {store.where}"
        )
        if outcome.failures:
            terminal.print_failures(err, [r.as_dict() for r in outcome.failures])
            raise typer.Exit(1)


@app.command("inspect")
def inspect_command(
    model: Annotated[str, typer.Argument(help="registry name or package.module:factory")],
    depth: Annotated[int, typer.Option(min=0, help="module nesting depth to show")] = 2,
    input_size: o.InputSize = None,
) -> None:
    """Per-module params and MAdds of one model."""
    info, instance = _one_model(model)
    given = parse_input_size(input_size)
    size = given or info.input_size
    title = f"{info.name} ({info.description}), input 1x{'x'.join(map(str, size))}"
    try:
        inspection = inspect_model(instance, torch.randn(1, *size), depth, title)
    except Exception as exc:  # the model cannot take the input size the user gave
        if given is None:
            raise
        reason = one_line(exc)
        own = ",".join(map(str, info.input_size))
        raise DynbenchError(
            f"{info.name} cannot run at --input-size {input_size} ({reason}); "
            f"its own input size is {own}"
        ) from None
    terminal.print_inspection(out, inspection)


def _one_model(name: str) -> tuple[ModelInfo, torch.nn.Module]:
    info = None if ":" in name else model_info(name)
    return load_user_model(name) if info is None else (info, info.builder().eval())


@app.command("export")
def export_command(
    format: o.Format = "csv",
    output: o.OutFile = None,
    db: o.Db = None,
    run: o.RunId = None,
    suite: o.SuiteFilter = None,
) -> None:
    """Export stored measurements as CSV or JSON."""
    if format not in ("csv", "json"):
        raise DynbenchError(f"unknown export format {format!r}; accepted: csv, json")
    if output is not None:
        check_writable(output, "--out path")
    require_db(db)
    with ResultStore(db, write=False) as store:
        frame = store.frame(run, suite)
        if frame.empty and (run or suite):
            check_stored(store.runs(), run, suite)
    text = (
        frame.to_csv(index=False) if format == "csv" else frame.to_json(orient="records", indent=1)
    )
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {len(frame)} measurements to {output}")


@app.command("report")
def report_command(
    db: o.ReportDbs = None,
    output: o.ReportOut = Path("reports"),
    run: o.RunIds = None,
    format: o.ReportFormat = "both",
    machine: o.Machine = None,
    reference: o.Reference = False,
    verbose: o.Verbose = False,
) -> None:
    """Write the claims report (markdown and/or one self-contained HTML page) and print its
    answer: the tally and one line per measured claim."""
    # imported here: the report's plots pull in matplotlib, which no other command needs
    from dynbench.report.machines import select_machine
    from dynbench.report.reference import reference_frame
    from dynbench.report.render import FORMATS, build_report, write_report

    if format not in FORMATS:
        raise DynbenchError(f"unknown report format {format!r}; accepted: {', '.join(FORMATS)}")
    for path in db or []:
        require_db(path)
    if output.exists() and not output.is_dir():
        raise DynbenchError(f"--out {str(output)!r} is a file; give a directory")
    frame = report_frame(db, run)
    if machine is not None:
        frame = select_machine(frame, machine)
    with stored_models(frame["model"], frame["settings"]):
        report = build_report(frame, reference_frame() if reference else None)
        written = write_report(report, output, format)
    if verbose:
        for path in written:
            err.print(f"wrote {path}")
    main_page = next((p for p in written if p.suffix == ".html"), written[-1])
    terminal.print_answer(out, report, str(main_page))


@app.command("compare")
def compare_command(
    run_a: o.RunOrJson,
    run_b: o.RunOrJson,
    db: o.Db = None,
    tolerance: o.Tolerance = 3.0,
    markdown: o.CompareMarkdown = None,
) -> None:
    """Check that two runs of a timing suite agree on their ratios; exit 1 if any differ."""
    if markdown is not None:
        check_writable(markdown, "--markdown path")
    require_db(db)
    runs = (compare_runs.load_run(run_a, db), compare_runs.load_run(run_b, db))
    table = compare_runs.compare_ratios(*runs, tolerance)
    caption, title = compare_runs.compare_caption(tolerance), f"{run_a} vs {run_b}"
    out.print(rich_table(table, title=title, caption=caption))
    agree, verdict = compare_runs.compare_verdict(table, tolerance)
    if markdown is not None:
        markdown.write_text(compare_runs.compare_markdown(title, table, tolerance, verdict))
        err.print(f"wrote {markdown}")
    err.print(verdict)
    if not agree:
        raise typer.Exit(1)


@app.command("merge")
def merge_command(
    output: Annotated[str, typer.Argument(help="store to merge into (path or URL; created)")],
    inputs: Annotated[list[str], typer.Argument(help="stores to merge from (paths or URLs)")],
) -> None:
    """Combine stores (of several machines or shards) without duplicating a measurement."""
    for source in inputs:
        require_db(source)
    with ResultStore(output) as out_store:
        for source in inputs:
            with ResultStore(source, write=False) as in_store:
                done = merge(out_store, in_store)
            ended = f", {done.ended} run(s) marked as ended" if done.ended else ""
            err.print(
                f"{done.source}: {done.measurements} measurements and {done.runs} runs added, "
                f"{done.known} already in {out_store.where}{ended}"
            )


@app.command("guard")
def guard_command(
    baseline: o.Guard.Baseline = Path(DEFAULT_BASELINE),
    models: o.Guard.Models = None,
    suite: o.Guard.Suite = None,
    model: o.Guard.UserModels = None,
    tolerance: o.Guard.Drift = 0.0,
    update: o.Guard.Update = False,
    allow_new: o.Guard.AllowNew = False,
    allow_removed: o.Guard.AllowRemoved = False,
    json_path: o.Guard.Json = None,
    markdown: o.Guard.Markdown = None,
    input_size: o.InputSize = None,
    operator: o.Guard.Operator = None,
    operator_name: o.Guard.OperatorName = None,
    placement: o.Guard.Placement = "blocks",
) -> None:
    """Fail (exit 1) when params or MAdds drift from the committed baseline."""
    if tolerance < 0:
        raise DynbenchError(f"--tolerance {tolerance} is negative; give a percentage >= 0")
    if models and suite:
        raise DynbenchError("give either --models or --suite, not both")
    for path, what in ((json_path, "--json path"), (markdown, "--markdown path")):
        if path is not None:
            check_writable(path, what)
    if update:
        check_writable(baseline, "baseline")
    user_operator = load_operator(operator, operator_name, placement) if operator else None
    with registered(user_operator) if user_operator else contextlib.nullcontext([]) as names:
        if names and not (models or suite):
            models = ",".join(names)  # the operator's models, unless others are named
        patterns = load_suite(suite).models if suite else ["*"]
        targets = guard_targets(models, model, suite, patterns, parse_input_size(input_size))
        selected_only = bool(models or suite or model)
        result, current = guard(targets, baseline, tolerance, selected_only, update, err)
    if update:
        print_update(out, result)
        err.print(f"wrote {baseline} ({result.seconds:.1f} s)")
        return
    failed = result.failed(allow_new, allow_removed)
    print_check(out, result, allow_new, allow_removed)
    if markdown is not None:
        markdown.write_text(markdown_summary(result, failed, tolerance))
    if json_path is not None:
        json_path.write_text(json_summary(result, current, failed, tolerance))
    verdict = "FAILED" if failed else "passed"
    err.print(
        f"guard {verdict}: {result.checked} models checked against {baseline} "
        f"in {result.seconds:.1f} s"
    )
    if failed:
        raise typer.Exit(1)


def main() -> None:
    """Entry point: one-line errors with exit code 2 for bad input."""
    if len(sys.argv) == 1:
        sys.argv.append("--help")
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit
        if isinstance(code, int) and code:
            sys.exit(code)
    except (DynbenchError, RunFailed) as exc:  # bad input: 2; a run that could not go on: 1
        err.print(f"error: {redact(str(exc))}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1 if isinstance(exc, RunFailed) else 2)
    except RunInterrupted as exc:  # Ctrl-C, SIGTERM or SIGHUP during a run: 128 + its number
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.status)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except ClickException as exc:
        message = redact(exc.format_message())
        err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)


__all__ = ["app", "main"]
