"""The CLI end to end: exact figures in --json, and every bad input as exit 2."""

import json
import sqlite3
import textwrap

import pytest

from dynbench.measure.environment import all_cores
from dynbench.results.store import ResultStore, load_results
from dynbench.run.shard import SLURM_VARIABLES

RESNET_PARAMS = {
    "resnet10": 5_418_792,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet50_v1": 25_557_032,
    "resnet101": 44_549_160,
    "resnet101_v1": 44_549_160,
}


def test_run_params_json_has_exact_figures(cli, tmp_path):
    baselines = ",".join(RESNET_PARAMS)
    result = cli("run", "--suite", "params", "--models", baselines, "--json", "out.json")
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "out.json").read_text())
    params = {
        r["model"]: r["value"]
        for r in records
        if r["metric"] == "params" and r["model"] in RESNET_PARAMS
    }
    assert params == RESNET_PARAMS
    assert {"model", "suite", "metric", "value", "unit", "method"} <= set(records[0])
    stored = load_results(tmp_path / "dynbench.sqlite")
    assert len(stored) == len(records)
    env = json.loads(stored.loc[0, "environment"])
    assert {"torch", "python", "cpu", "threads", "hostname", "timestamp", "git_commit"} <= set(env)


def test_run_madds_json(cli, tmp_path):
    result = cli("run", "--suite", "madds", "--models", "mobilenetv2_0??", "--json", "m.json")
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "m.json").read_text())
    weights = [r for r in records if r["metric"] == "weight_bytes_per_image"]
    records = [r for r in records if r["metric"] == "madds"]
    conv_linear = {r["model"]: r["value"] for r in records if r["method"] == "conv_linear"}
    assert conv_linear == {
        "mobilenetv2_075": 209_069_792,
        "mobilenetv2_050": 97_131_840,
        "mobilenetv2_035": 59_285_808,
    }
    assert {r["method"] for r in records} == {
        "fvcore",
        "ptflops",
        "torch",
        "conv_linear",
        "analytic",
    }
    assert all(r["unit"] == "MAdds" for r in records)
    assert "disagree by" not in result.stdout  # per-counter notes: --verbose or the report
    # every model of the madds suite also gets the weight bytes one image reads (fp32)
    assert {r["model"]: r["value"] for r in weights} == {
        "mobilenetv2_075": 4 * 2_636_424,
        "mobilenetv2_050": 4 * 1_968_680,
        "mobilenetv2_035": 4 * 1_677_128,
    }
    assert all(r["unit"] == "bytes" and r["detail"]["ratio_to_static"] == 1 for r in weights)


def test_user_model(cli, tmp_path):
    (tmp_path / "mynet.py").write_text(
        textwrap.dedent("""
        from torch import nn
        def tiny():
            return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.Flatten(), nn.LazyLinear(2))
        def small():
            return nn.Sequential(nn.Conv2d(3, 4, 1, bias=False))
        def not_a_module():
            return 42
    """)
    )
    result = cli(
        "run",
        "--suite",
        "default",
        "--model",
        "mynet:small",
        "--json",
        "u.json",
        "--input-size",
        "3,8,8",
    )
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "u.json").read_text())
    values = {(r["metric"], r["method"]): r["value"] for r in records}
    assert values[("params", "count")] == 12
    assert values[("madds", "conv_linear")] == 4 * 3 * 8 * 8


def test_list_and_inspect(cli):
    listed = cli("list", "mobilenetv2_*")
    assert listed.code == 0 and "mobilenetv2_035" in listed.stdout
    inspected = cli("inspect", "resnet18", "--depth", "1")
    assert inspected.code == 0, inspected.stderr
    assert "layer4" in inspected.stdout and "1,814,073,344" in inspected.stdout


def test_counters_of_a_resolution_suite(cli, tmp_path):
    """--counters is taken by any measure that counts MAdds, the resolution measure too."""
    (tmp_path / "res.toml").write_text(
        'measures = ["resolution"]\nmodels = ["resnet18"]\n'
        "[settings]\ninput_sizes = [[3, 224, 224], [3, 32, 32]]\n"
    )
    result = cli("run", "--suite", "res.toml", "--counters", "conv_linear", "--json", "r.json")
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "r.json").read_text())
    assert [(r["method"], r["settings"]["input_size"], r["value"]) for r in records] == [
        ("conv_linear", [3, 224, 224], 1_814_073_344),
        ("conv_linear", [3, 32, 32], 37_523_456),
    ]


def test_input_size_option_wins_over_the_suite_setting(cli, tmp_path):
    (tmp_path / "sized.toml").write_text(
        'measures = ["madds"]\nmodels = ["resnet18"]\n'
        '[settings]\ninput_size = [3, 64, 64]\ncounters = ["conv_linear"]\n'
    )
    result = cli("run", "--suite", "sized.toml", "--input-size", "3,32,32", "--json", "s.json")
    assert result.code == 0, result.stderr
    (madds,) = [r for r in json.loads((tmp_path / "s.json").read_text()) if r["metric"] == "madds"]
    assert (madds["settings"]["input_size"], madds["value"]) == ([3, 32, 32], 37_523_456)
    assert cli("run", "--suite", "sized.toml", "--json", "t.json").code == 0
    (own,) = [r for r in json.loads((tmp_path / "t.json").read_text()) if r["metric"] == "madds"]
    assert (own["settings"]["input_size"], own["value"]) == ([3, 64, 64], 148_557_824)


def test_export_csv_and_json(cli, tmp_path):
    assert cli("run", "--suite", "params", "--models", "resnet18").code == 0
    assert cli("export", "--format", "csv", "--out", "x.csv").code == 0
    assert "params_no_classifier" in (tmp_path / "x.csv").read_text()
    assert cli("export", "--format", "json", "--out", "x.json").code == 0
    assert len(json.loads((tmp_path / "x.json").read_text())) == 3


def test_export_of_a_run_that_stored_nothing_says_so(cli, tmp_path):
    """A run that failed before its first measurement is in the store: export names it and
    its status instead of calling it unknown."""
    with ResultStore(tmp_path / "e.sqlite") as store:
        run = store.start_run("params", {"timestamp": "2026-11-30T08:00:00+00:00"})
        store.finish_run(run, "failed", "2026-11-30T08:00:01+00:00")
    result = cli("export", "--db", "e.sqlite", "--run", run)
    assert result.code == 2
    assert result.stderr.strip() == f"error: run '{run}' (failed) stored no measurements"
    other = cli("export", "--db", "e.sqlite", "--run", run, "--suite", "madds")
    assert (
        other.stderr.strip()
        == "error: --suite 'madds' is not in the store; stored (newest last): params"
    )


@pytest.fixture
def bad_inputs(tmp_path, monkeypatch):
    for name in SLURM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "broken.toml").write_text("measures = [params\n")
    (tmp_path / "typo.toml").write_text('measures = ["params"]\nmodels = ["*"]\nmodel = "x"\n')
    (tmp_path / "badcounter.toml").write_text(
        'measures = ["madds"]\nmodels = ["resnet18"]\n[settings]\ncounters = ["thop"]\n'
    )
    (tmp_path / "badmetric.toml").write_text('measures = ["speed"]\nmodels = ["resnet18"]\n')
    (tmp_path / "corrupt.sqlite").write_bytes(b"this is not a database" * 100)
    (tmp_path / "mynet.py").write_text("def not_a_module():\n    return 42\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "allout.toml").write_text(
        'measures = ["params"]\nmodels = ["resnet10*"]\nexclude = ["resnet1*"]\n'
    )
    (tmp_path / "onlytypo.toml").write_text(
        'measures = ["params"]\nmodels = ["resnet10"]\n[only]\nparams = ["resnt10*"]\n'
    )
    return {
        "unknown model": (["inspect", "resnet19"], "unknown model"),
        "pattern matches nothing": (["run", "--models", "vgg*"], "matches no registered model"),
        "unknown suite": (["run", "--suite", "nosuch"], "unknown suite"),
        "malformed suite": (["run", "--suite", "broken.toml"], "not valid TOML"),
        "unknown suite key": (["run", "--suite", "typo.toml"], "unknown key"),
        "unknown counter": (["run", "--suite", "badcounter.toml"], "unknown counter 'thop'"),
        "unknown counter option": (
            ["run", "--suite", "madds", "--counters", "thop"],
            "unknown counter",
        ),
        "unknown measure": (["run", "--suite", "badmetric.toml"], "unknown measure 'speed'"),
        "unimportable model": (["run", "--model", "nosuchpkg.mod:f"], "cannot import"),
        "factory not a module": (
            ["run", "--model", "mynet:not_a_module"],
            "expected a torch.nn.Module",
        ),
        "model ref without factory": (["run", "--model", "mynet"], "package.module:factory"),
        "bad input size": (
            ["run", "--models", "resnet18", "--input-size", "3,224"],
            "three positive integers",
        ),
        "negative input size": (
            ["run", "--models", "resnet18", "--input-size", "3,-1,224"],
            "three positive integers",
        ),
        "unwritable json": (
            ["run", "--models", "resnet18", "--json", "/nonexistent/dir/o.json"],
            "not writable",
        ),
        "json is a directory": (
            ["run", "--models", "resnet18", "--json", "adir"],
            "is a directory",
        ),
        "unwritable db": (
            ["run", "--models", "resnet18", "--db", "/nonexistent/dir/x.sqlite"],
            "not writable",
        ),
        "corrupt db": (
            ["run", "--models", "resnet18", "--db", "corrupt.sqlite"],
            "not a usable dynbench store",
        ),
        "unknown export format": (["export", "--format", "xml"], "unknown export format"),
        "input size the model cannot take": (
            ["inspect", "resnet18", "--input-size", "1,32,32"],
            "resnet18 cannot run at --input-size 1,32,32 (RuntimeError: Given groups=1",
        ),
        "exclude removes every model": (
            ["run", "--suite", "allout.toml"],
            "exclude ['resnet1*'] removes every model that the suite's models ['resnet10*'] select",
        ),
        "[only] glob matching nothing": (
            ["run", "--suite", "onlytypo.toml"],
            "[only] params glob 'resnt10*' matches no model",
        ),
        "empty --models": (["run", "--models", ""], "--models '' names no model"),
        "--models without a pattern": (["run", "--models", ","], "--models ',' names no model"),
        "guard --models without a pattern": (
            ["guard", "--models", " , "],
            "--models ' , ' names no model",
        ),
        "guard of a suite without models": (
            ["guard", "--suite", "machine"],
            "suite 'machine' selects no model to guard",
        ),
        "export of an unknown run": (
            ["export", "--run", "nosuch"],
            "--run 'nosuch' is not in the store; stored (newest last): ",
        ),
        "export of an unknown suite": (
            ["export", "--suite", "nosuch"],
            "--suite 'nosuch' is not in the store; stored (newest last): params",
        ),
        "counters for a suite without counters": (
            ["run", "--suite", "params", "--counters", "conv_linear"],
            "--counters applies to the measures madds, resolution; suite 'params' measures params",
        ),
        "no jobs": (["run", "--suite", "params", "--jobs", "0"], "--jobs 0 is out of range"),
        "more jobs than cores": (
            ["run", "--suite", "params", "--jobs", str(all_cores() + 1)],
            f"accepted: 1 to {all_cores()} (the cores)",
        ),
        "no threads": (["run", "--suite", "latency", "--threads", "0"], "is not a positive"),
        "more threads than cores": (
            ["run", "--suite", "latency", "--threads", str(all_cores() + 1)],
            f"more than the {all_cores()} cores this process may run on; accepted: 1 to",
        ),
        "shard beyond its count": (["run", "--shard", "2/2"], "is not i/N with 0 <= i < N"),
        "shard auto outside SLURM": (
            ["run", "--shard", "auto"],
            "--shard auto needs a SLURM job array; not set here: SLURM_ARRAY_TASK_ID",
        ),
        "negative compare tolerance": (["compare", "a", "b", "--tolerance", "-1"], "--tolerance"),
        "negative guard tolerance": (["guard", "--tolerance", "-1"], "is negative"),
        "negative inspect depth": (["inspect", "resnet10", "--depth", "-1"], "--depth"),
        "input size for a suite with its own sizes": (
            ["run", "--suite", "resolution", "--input-size", "3,32,32"],
            "--input-size applies to the measures params, madds,",
        ),
    }


def test_bad_inputs_fail_cleanly(cli, bad_inputs, tmp_path):
    assert cli("run", "--suite", "params", "--models", "resnet18").code == 0
    db = tmp_path / "dynbench.sqlite"
    before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    for case, (args, message) in bad_inputs.items():
        result = cli(*args)
        assert result.code == 2, f"{case}: exit {result.code}\n{result.stderr}"
        assert message in result.stderr, f"{case}: {result.stderr!r}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{case}: {lines}"
        assert "Traceback" not in result.stderr
    after = sqlite3.connect(db).execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    runs = sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert after == before and runs == 1
    assert (tmp_path / "corrupt.sqlite").read_bytes() == b"this is not a database" * 100


def test_report_formats_runs_and_bad_input(cli, tmp_path):
    assert cli("run", "--suite", "params", "--models", "resnet10*", "--db", "s.sqlite").code == 0
    result = cli("report", "--db", "s.sqlite", "--out", "md", "--format", "md")
    assert result.code == 0, result.stderr
    written = {p.name for p in (tmp_path / "md").iterdir()}
    assert "report.md" in written and "report.html" not in written and "sizes.csv" in written
    markdown = (tmp_path / "md" / "report.md").read_text()
    # a params run judges no claim: its own table first, the scorecard's one line last
    assert markdown.index("## Params and MAdds") < markdown.index("## Claims scorecard")
    answer = result.stdout.splitlines()
    assert answer[0].startswith("dynbench: 32 claims")
    assert answer[-1].startswith("Report: ") and answer[-1].endswith("report.md")
    assert len(answer) <= 40
    run_id = load_results(tmp_path / "s.sqlite")["run_id"].iloc[0]
    assert cli("report", "--db", "s.sqlite", "--out", "one", "--run", run_id).code == 0
    assert (tmp_path / "one" / "report.html").is_file()
    bad = cli("report", "--db", "s.sqlite", "--format", "pdf")
    assert bad.code == 2 and bad.stderr.strip().splitlines() == [
        "error: unknown report format 'pdf'; accepted: md, html, both"
    ]
    missing = cli("report", "--db", "s.sqlite", "--run", "nope")
    assert missing.code == 2 and "run id(s) nope not in the store(s)" in missing.stderr
