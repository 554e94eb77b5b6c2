"""The options of the ``dynbench`` commands, declared once in typer's ``Annotated`` form so
that each command's signature in :mod:`dynbench.cli` reads as the list of what it takes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DB_HELP = (
    "results store: a path (SQLite) or a URL, sqlite:///PATH or "
    "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DBNAME (default ./dynbench.sqlite or "
    "$DYNBENCH_DB)"
)
SHARD_HELP = (
    "i/N: only the i-th of N deterministic parts (0 <= i < N), e.g. $JOB_COMPLETION_INDEX/8; "
    "'auto': this task's place in its SLURM job array; a timing suite keeps each family in "
    "one part"
)
REPORT_DB_HELP = (
    "results database (repeatable: several stores in one report; default ./dynbench.sqlite "
    "or $DYNBENCH_DB)"
)


# shared
Db = Annotated[str | None, typer.Option("--db", help=DB_HELP)]
Verbose = Annotated[
    bool, typer.Option("--verbose", help="also every table and per-counter note in the terminal")
]
InputSize = Annotated[
    str | None, typer.Option("--input-size", help="C,H,W input size, e.g. 3,224,224")
]

# run
SuiteName = Annotated[str, typer.Option("--suite", help="suite name or path to a .toml file")]
Models = Annotated[
    str | None, typer.Option("--models", help="glob over registry names, overrides the suite's")
]
UserModels = Annotated[
    list[str] | None,
    typer.Option("--model", help="user model as package.module:factory (repeatable)"),
]
RecordsJson = Annotated[
    Path | None, typer.Option("--json", help="also write the records to this JSON file")
]
RunInputSize = Annotated[
    str | None,
    typer.Option(
        "--input-size",
        help="C,H,W input size of every model, e.g. 3,224,224; wins over the suite's "
        "input_size setting",
    ),
]
Counters = Annotated[str | None, typer.Option(help="comma-separated MAdds counters to run")]
Shard = Annotated[str | None, typer.Option(help=SHARD_HELP)]
MachineLabel = Annotated[
    str | None,
    typer.Option(
        "--machine-label",
        envvar="DYNBENCH_MACHINE_LABEL",
        help="your name for this machine, e.g. laptop (stored with every record)",
    ),
]
Compile = Annotated[
    bool | None,
    typer.Option("--compile/--no-compile", help="torch.compile each model (timing suites)"),
]
CompileMode = Annotated[
    str | None, typer.Option("--compile-mode", help="torch.compile mode (default: default)")
]
Dtype = Annotated[str | None, typer.Option("--dtype", help="fp32 (default), bf16 or fp16")]
Threads = Annotated[
    int | None, typer.Option("--threads", help="CPU threads of the latency suite (default 1)")
]
ChannelsLast = Annotated[
    bool | None,
    typer.Option("--channels-last/--no-channels-last", help="channels-last memory layout"),
]
Jobs = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        help="processes of a size suite (params, madds, resolution), 1 to the cores; "
        "default: one per core",
    ),
]
Baseline = Annotated[
    str | None,
    typer.Option(
        "--baseline",
        help="registry name or package.module:factory: every --model joins its family "
        "(timed interleaved with it, ratios with intervals)",
    ),
]
Operator = Annotated[
    str | None,
    typer.Option(
        "--operator",
        help="package.module:Class, a drop-in nn.Conv2d: built into resnet18, resnet50 "
        "and mobilenetv2_100 as <backbone>_<name> for this run",
    ),
]
OperatorName = Annotated[
    str | None,
    typer.Option("--operator-name", help="<name> of --operator's models (default: Class)"),
]
Placement = Annotated[
    str,
    typer.Option(
        "--placement",
        help="where --operator goes: blocks (every block conv, as ODConv) or pointwise "
        "(block 1x1 convs, as DCD)",
    ),
]

# export, report, compare
Format = Annotated[str, typer.Option("--format", help="csv or json")]
OutFile = Annotated[Path | None, typer.Option("--out", help="file to write (default: stdout)")]
RunId = Annotated[str | None, typer.Option("--run", help="only this run id")]
SuiteFilter = Annotated[str | None, typer.Option("--suite", help="only this suite")]
ReportDbs = Annotated[list[str] | None, typer.Option("--db", help=REPORT_DB_HELP)]
ReportOut = Annotated[Path, typer.Option("--out", help="directory for report.md and report.html")]
RunIds = Annotated[
    list[str] | None,
    typer.Option("--run", help="only these run ids (repeatable; default: newest value of each)"),
]
ReportFormat = Annotated[str, typer.Option("--format", help="md, html or both")]
Machine = Annotated[
    str | None,
    typer.Option(
        "--machine", help="only this machine: its --machine-label or fingerprint (prefix)"
    ),
]
Reference = Annotated[
    bool,
    typer.Option(
        "--reference/--no-reference",
        help="set the reference machine's committed figures (shipped with dynbench) beside",
    ),
]
RunOrJson = Annotated[str, typer.Argument(help="run id in the store, or a --json file")]
Tolerance = Annotated[float, typer.Option(min=0, help="largest accepted difference, in percent")]
CompareMarkdown = Annotated[
    Path | None, typer.Option("--markdown", help="also write the table as markdown")
]


class Guard:
    """The options of ``dynbench guard``: some share a name with the run's, not a meaning."""

    Baseline = Annotated[Path, typer.Option(help="baseline JSON file")]
    Models = Annotated[str | None, typer.Option("--models", help="glob over registry names")]
    Suite = Annotated[str | None, typer.Option("--suite", help="guard the models of this suite")]
    UserModels = Annotated[
        list[str] | None,
        typer.Option("--model", help="user model package.module:factory (repeatable)"),
    ]
    Drift = Annotated[float, typer.Option(help="allowed drift in percent")]
    Update = Annotated[
        bool, typer.Option("--update", help="rewrite the baseline and print what changed")
    ]
    AllowNew = Annotated[
        bool, typer.Option("--allow-new", help="models missing from the baseline do not fail")
    ]
    AllowRemoved = Annotated[
        bool, typer.Option("--allow-removed", help="baseline models no longer present do not fail")
    ]
    Markdown = Annotated[
        Path | None, typer.Option("--markdown", help="write a GitHub markdown summary")
    ]
    Json = Annotated[Path | None, typer.Option("--json", help="write the result as JSON")]
    Operator = Annotated[
        str | None,
        typer.Option(
            "--operator",
            help="package.module:Class: guard its models (as dynbench run --operator builds them)",
        ),
    ]
    OperatorName = Annotated[
        str | None, typer.Option("--operator-name", help="<name> of --operator's models")
    ]
    Placement = Annotated[
        str, typer.Option("--placement", help="where --operator goes: blocks or pointwise")
    ]
