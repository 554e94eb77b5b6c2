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

from dynbench.errors import DynbenchError, one_line
from dynbench.guard.baseline import DEFAULT_BASELINE
from dynbench.guard.render import json_summary, markdown_summary, print_check, print_update
from dynbench.guard.run import guard
from dynbench.measure.breakdown import inspect_model
from dynbench.measure.environment import all_cores
from dynbench.models import all_models, load_user_model, model_info
from dynbench.models.identity import stored_models
from dynbench.models.registry import ModelInfo, parse_input_size, select_models
from dynbench.models.user_operator import load_operator, registered
from dynbench.redact import redact
from dynbench.report.compare_runs import compare_ratios, load_run
from dynbench.report.terminal import (
    print_answer,
    print_failures,
    print_inspection,
    print_published_comparison,
    print_summary,
    rich_table,
)
from dynbench.results.merge import merge
from dynbench.results.store import ResultStore, check_writable, sqlite_path, store_url
from dynbench.run.family import Target, resolve_targets, run_targets, with_input_size
from dynbench.run.pool import check_jobs
from dynbench.run.runner import RunFailed, RunInterrupted, run_suite
from dynbench.run.settings import RunSettings
from dynbench.run.shard import parse_shard
from dynbench.run.steps import STEPS
from dynbench.run.suite import Suite, available_suites, check_only, load_suite, run_settings

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

DB_HELP = (
    "results store: a path (SQLite) or a URL, sqlite:///PATH or "
    "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DBNAME (default ./dynbench.sqlite or "
    "$DYNBENCH_DB)"
)
DbOption = Annotated[str | None, typer.Option("--db", help=DB_HELP)]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", help="also every table and per-counter note in the terminal")
]
InputSizeOption = Annotated[
    str | None, typer.Option("--input-size", help="C,H,W input size, e.g. 3,224,224")
]
RunInputSizeOption = Annotated[
    str | None,
    typer.Option(
        "--input-size",
        help="C,H,W input size of every model, e.g. 3,224,224; wins over the suite's "
        "input_size setting",
    ),
]


def require_db(db: str | None) -> None:
    """A SQLite store given for reading must exist (sqlite would quietly create an empty
    one); a server's store is checked when it is opened."""
    if db is None:
        return
    path = sqlite_path(store_url(db))
    if path is not None and not path.exists():
        raise DynbenchError(f"database {db!r} does not exist; run 'dynbench run' first")


@app.command("list")
def list_command(
    pattern: Annotated[str, typer.Argument(help="glob, e.g. 'resnet18*'")] = "*",
    operator: Annotated[str | None, typer.Option(help="only this operator, e.g. odconv")] = None,
) -> None:
    """List registered models."""
    infos = [model_info(n) for n in select_models(pattern)]
    if operator:
        operators = sorted({i.operator for i in all_models()})
        if operator not in operators:
            raise DynbenchError(f"unknown operator {operator!r}; accepted: {', '.join(operators)}")
        infos = [i for i in infos if i.operator == operator]
    frame = pd.DataFrame(
        [
            {
                "name": i.name,
                "family": i.family,
                "operator": i.operator,
                "input": "x".join(map(str, i.input_size)),
                "description": i.description,
            }
            for i in infos
        ]
    )
    out.print(rich_table(frame, title=f"{len(frame)} models"))


@app.command("suites")
def suites_command() -> None:
    """List the suites that --suite accepts by name."""
    rows = []
    for name, source in available_suites().items():
        suite = load_suite(source)
        rows.append(
            {
                "suite": name,
                "measures": ", ".join(suite.measures),
                "description": suite.description,
                "file": source,
            }
        )
    out.print(rich_table(pd.DataFrame(rows)))


@app.command("run")
def run_command(
    suite: Annotated[
        str, typer.Option("--suite", help="suite name or path to a .toml file")
    ] = "default",
    models: Annotated[
        str | None, typer.Option("--models", help="glob over registry names, overrides the suite's")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="user model as package.module:factory (repeatable)"),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the records to this JSON file")
    ] = None,
    db: DbOption = None,
    input_size: RunInputSizeOption = None,
    counters: Annotated[
        str | None, typer.Option(help="comma-separated MAdds counters to run")
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="i/N: only the i-th of N deterministic parts (0 <= i < N), e.g. "
            "$JOB_COMPLETION_INDEX/8; 'auto': this task's place in its SLURM job array; a "
            "timing suite keeps each family in one part"
        ),
    ] = None,
    machine_label: Annotated[
        str | None,
        typer.Option(
            "--machine-label",
            envvar="DYNBENCH_MACHINE_LABEL",
            help="your name for this machine, e.g. laptop (stored with every record)",
        ),
    ] = None,
    compile: Annotated[
        bool | None,
        typer.Option("--compile/--no-compile", help="torch.compile each model (timing suites)"),
    ] = None,
    compile_mode: Annotated[
        str | None, typer.Option("--compile-mode", help="torch.compile mode (default: default)")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option("--dtype", help="fp32 (default), bf16 or fp16")
    ] = None,
    channels_last: Annotated[
        bool | None,
        typer.Option("--channels-last/--no-channels-last", help="channels-last memory layout"),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads of the latency suite (default 1)")
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            help="processes of a size suite (params, madds, resolution), 1 to the cores; "
            "default: one per core",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="registry name or package.module:factory: every --model joins its family "
            "(timed interleaved with it, ratios with intervals)",
        ),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            help="package.module:Class, a drop-in nn.Conv2d: built into resnet18, resnet50 "
            "and mobilenetv2_100 as <backbone>_<name> for this run",
        ),
    ] = None,
    operator_name: Annotated[
        str | None,
        typer.Option("--operator-name", help="<name> of --operator's models (default: Class)"),
    ] = None,
    placement: Annotated[
        str,
        typer.Option(
            "--placement",
            help="where --operator goes: blocks (every block conv, as ODConv) or pointwise "
            "(block 1x1 convs, as DCD)",
        ),
    ] = "blocks",
    verbose: VerboseOption = False,
) -> None:
    """Run a suite and store every measurement."""
    the_suite = load_suite(suite)
    options = {
        "compile": compile,
        "compile_mode": compile_mode,
        "dtype": dtype,
        "channels_last": channels_last,
        "threads": threads,
    }
    size = parse_input_size(input_size)
    options["input_size"] = None if size is None else list(size)  # over the suite's setting
    if counters is not None:
        options["counters"] = [c.strip() for c in counters.split(",") if c.strip()]
    settings = run_settings(the_suite, options)
    parts = parse_shard(shard) if shard is not None else None
    if jobs is not None:
        check_jobs(jobs, all_cores())
    user_operator = load_operator(operator, operator_name, placement) if operator else None
    with registered(user_operator) if user_operator else contextlib.nullcontext([]) as names:
        targets = run_targets(
            the_suite.models,
            the_suite.exclude,
            the_suite.families,
            models,
            model,
            baseline,
            names,
        )
        _run(the_suite, settings, targets, json_path, db, parts, machine_label, jobs, verbose)


def _run(
    the_suite: Suite,
    settings: RunSettings,
    targets: list[Target],
    json_path: Path | None,
    db: str | None,
    parts: tuple[int, int] | None,
    machine_label: str | None,
    jobs: int | None,
    verbose: bool,
) -> None:
    """Measure ``targets`` with the suite, store and summarise the records."""
    check_only(the_suite, [t.info.name for t in targets])
    needs_cuda = [m for m in the_suite.measures if STEPS[m].needs_cuda]
    if needs_cuda and not torch.cuda.is_available():
        err.print(
            f"suite {the_suite.name} skipped: {', '.join(needs_cuda)} needs a CUDA device and "
            f"torch.cuda.is_available() is False (torch {torch.__version__})"
        )
        return
    if json_path is not None:
        check_writable(json_path, "--json path")
    with ResultStore(db) as store:
        outcome = run_suite(
            the_suite, targets, store, json_path, err, parts, machine_label, jobs, settings
        )
    records = pd.DataFrame([r.as_dict() for r in outcome.records])
    with stored_models(records.get("model", []), records.get("settings", [])):
        print_summary(out, records, the_suite.name, verbose)
    if the_suite.compare == "published" and verbose:
        print_published_comparison(out, records)
    err.print(f"run {outcome.run_id}: {len(outcome.records)} measurements stored in {store.where}")
    if outcome.failures:
        print_failures(err, [r.as_dict() for r in outcome.failures])
        raise typer.Exit(1)


@app.command("inspect")
def inspect_command(
    model: Annotated[str, typer.Argument(help="registry name or package.module:factory")],
    depth: Annotated[int, typer.Option(min=0, help="module nesting depth to show")] = 2,
    input_size: InputSizeOption = None,
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
    print_inspection(out, inspection)


def _one_model(name: str) -> tuple[ModelInfo, torch.nn.Module]:
    if ":" in name:
        return load_user_model(name)
    info = model_info(name)
    return info, info.builder().eval()


@app.command("export")
def export_command(
    format: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--out", help="file to write (default: stdout)")
    ] = None,
    db: DbOption = None,
    run: Annotated[str | None, typer.Option("--run", help="only this run id")] = None,
    suite: Annotated[str | None, typer.Option("--suite", help="only this suite")] = None,
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
            _check_stored(store.runs(), run, suite)
    text = (
        frame.to_csv(index=False) if format == "csv" else frame.to_json(orient="records", indent=1)
    )
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {len(frame)} measurements to {output}")


def _check_stored(stored_runs: pd.DataFrame, run: str | None, suite: str | None) -> None:
    """An export's --run or --suite that selects nothing is an error, as in 'dynbench
    report': an empty file would look like a run without measurements."""
    for column, value, option in (("run_id", run, "--run"), ("suite", suite, "--suite")):
        stored = list(dict.fromkeys(stored_runs[column]))
        if value and value not in stored:
            listed = ", ".join(stored[-10:]) or "none"
            raise DynbenchError(
                f"{option} {value!r} is not in the store; stored (newest last): {listed}"
            )
    if run:
        row = stored_runs[stored_runs["run_id"] == run].iloc[0]
        if suite and row["suite"] != suite:
            raise DynbenchError(f"run {run!r} is of suite {row['suite']!r}, not {suite!r}")
        raise DynbenchError(f"run {run!r} ({row['status']}) stored no measurements")
    raise DynbenchError(f"no run of suite {suite!r} stored a measurement")


@app.command("report")
def report_command(
    db: Annotated[
        list[str] | None,
        typer.Option(
            "--db",
            help="results database (repeatable: several stores in one report; default "
            "./dynbench.sqlite or $DYNBENCH_DB)",
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--out", help="directory for report.md and report.html")
    ] = Path("reports"),
    run: Annotated[
        list[str] | None,
        typer.Option(
            "--run", help="only these run ids (repeatable; default: newest value of each)"
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="md, html or both")] = "both",
    machine: Annotated[
        str | None,
        typer.Option(
            "--machine", help="only this machine: its --machine-label or fingerprint (prefix)"
        ),
    ] = None,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference/--no-reference",
            help="set the reference machine's committed figures (shipped with dynbench) beside",
        ),
    ] = False,
    verbose: VerboseOption = False,
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
    frames = []
    for path in db or [None]:
        with ResultStore(path, write=False) as store:
            frames.append(store.frame())
    frame = pd.concat(frames, ignore_index=True)
    if run:
        unknown = sorted(set(run) - set(frame["run_id"]))
        if unknown:
            raise DynbenchError(
                f"run id(s) {', '.join(unknown)} not in the store(s); "
                "'dynbench export' lists the stored runs"
            )
        frame = frame[frame["run_id"].isin(run)]
    if frame.empty:
        raise DynbenchError("no measurements in the store(s); run 'dynbench run' first")
    if machine is not None:
        frame = select_machine(frame, machine)
    with stored_models(frame["model"], frame["settings"]):
        report = build_report(frame, reference_frame() if reference else None)
        written = write_report(report, output, format)
    if verbose:
        for path in written:
            err.print(f"wrote {path}")
    main_page = next((p for p in written if p.suffix == ".html"), written[-1])
    print_answer(out, report, str(main_page))


@app.command("compare")
def compare_command(
    run_a: Annotated[str, typer.Argument(help="run id in the store, or a --json file")],
    run_b: Annotated[str, typer.Argument(help="run id in the store, or a --json file")],
    db: DbOption = None,
    tolerance: Annotated[
        float, typer.Option(min=0, help="largest accepted difference, in percent")
    ] = 3.0,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="also write the table as markdown")
    ] = None,
) -> None:
    """Check that two runs of a timing suite agree on their ratios; exit 1 if any differ."""
    if markdown is not None:
        check_writable(markdown, "--markdown path")
    require_db(db)
    table = compare_ratios(load_run(run_a, db), load_run(run_b, db), tolerance)
    caption = f"ratio = variant / family baseline; agree = difference within {tolerance:g}%"
    out.print(rich_table(table, title=f"{run_a} vs {run_b}", caption=caption))
    worst = table["difference_%"].max()
    agree = not (table["agree"] == "NO").any()
    verdict = (
        f"runs agree: largest difference {worst:.2f}% <= {tolerance:g}%"
        if agree
        else f"runs disagree: largest difference {worst:.2f}% > {tolerance:g}%"
    )
    if markdown is not None:
        markdown.write_text(
            f"# {run_a} vs {run_b}\n\n{caption}.\n\n"
            + table.to_markdown(index=False)
            + f"\n\n**{verdict}**\n"
        )
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
    baseline: Annotated[Path, typer.Option(help="baseline JSON file")] = Path(DEFAULT_BASELINE),
    models: Annotated[str | None, typer.Option("--models", help="glob over registry names")] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", help="guard the models of this suite")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="user model package.module:factory (repeatable)"),
    ] = None,
    tolerance: Annotated[float, typer.Option(help="allowed drift in percent")] = 0.0,
    update: Annotated[
        bool, typer.Option("--update", help="rewrite the baseline and print what changed")
    ] = False,
    allow_new: Annotated[
        bool, typer.Option("--allow-new", help="models missing from the baseline do not fail")
    ] = False,
    allow_removed: Annotated[
        bool, typer.Option("--allow-removed", help="baseline models no longer present do not fail")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write the result as JSON")
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="write a GitHub markdown summary")
    ] = None,
    input_size: InputSizeOption = None,
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            help="package.module:Class: guard its models (as dynbench run --operator builds them)",
        ),
    ] = None,
    operator_name: Annotated[
        str | None, typer.Option("--operator-name", help="<name> of --operator's models")
    ] = None,
    placement: Annotated[
        str, typer.Option("--placement", help="where --operator goes: blocks or pointwise")
    ] = "blocks",
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
        targets = with_input_size(
            resolve_targets(models, model, patterns), parse_input_size(input_size)
        )
        if not targets:
            raise DynbenchError(
                f"suite {suite!r} selects no model to guard; name a suite with models"
            )
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
