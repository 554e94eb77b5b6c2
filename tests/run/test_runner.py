"""The runner: a model that fails is recorded and the others are still measured."""

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy.exc import OperationalError

from dynbench.results.store import ResultStore
from dynbench.run import runner


def test_user_model_whose_forward_raises(cli, tmp_path):
    (tmp_path / "brokennet.py").write_text(
        textwrap.dedent("""
        from torch import nn

        class Broken(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 1)

            def forward(self, x):
                raise ValueError("expected a 5-d input,\\ngot 4-d")

        def broken():
            return Broken()
    """)
    )
    result = cli(
        "run", "--suite", "madds", "--models", "resnet10", "--model", "brokennet:broken",
        "--counters", "conv_linear,analytic", "--json", "r.json", "--db", "r.sqlite",
    )  # fmt: skip
    assert result.code == 1
    assert "Traceback" not in result.stderr
    summary = [line for line in result.stderr.splitlines() if "failed" in line]
    assert summary == [
        "1 model(s) failed: brokennet:broken (madds: ValueError: expected a 5-d input,)"
    ]
    records = json.loads((tmp_path / "r.json").read_text())
    errors = [r for r in records if r["metric"] == "error"]
    assert [(r["model"], r["method"], r["detail"]["error"]) for r in errors] == [
        ("brokennet:broken", "madds", "ValueError: expected a 5-d input,")
    ]
    measured = {(r["model"], r["method"]) for r in records if r["metric"] == "madds"}
    assert measured == {("resnet10", "conv_linear"), ("resnet10", "analytic")}
    con = sqlite3.connect(tmp_path / "r.sqlite")
    stored = con.execute("SELECT model, metric FROM measurements WHERE metric = 'error'")
    assert stored.fetchall() == [("brokennet:broken", "error")]
    assert con.execute("SELECT status FROM runs").fetchall() == [("complete",)]
    con.close()


def test_a_failing_family_measure_records_every_member(cli, tmp_path):
    (tmp_path / "slownet.py").write_text(
        textwrap.dedent("""
        from torch import nn

        class Fails(nn.Module):
            def forward(self, x):
                raise RuntimeError("no kernel for this shape")

        def fails():
            return Fails()
    """)
    )
    (tmp_path / "quick.toml").write_text(
        'measures = ["latency"]\nmodels = ["resnet10"]\n'
        "[settings]\ninput_size = [3, 16, 16]\nrounds = 6\nmax_rounds = 6\nmin_run_time = 0.01\n"
        "warmup = 1\n"
    )
    result = cli(
        "run", "--suite", "quick.toml", "--models", "resnet10", "--model", "slownet:fails",
        "--json", "t.json",
    )  # fmt: skip
    assert result.code == 1
    records = json.loads((tmp_path / "t.json").read_text())
    assert {r["model"] for r in records if r["metric"] == "latency_ms"} == {"resnet10"}
    errors = [(r["model"], r["method"]) for r in records if r["metric"] == "error"]
    assert errors == [("slownet:fails", "latency")]


VARIANTS = ("dcd", "dyconv_4x", "odconv_1x", "odconv_2x", "odconv_3x", "odconv_4x", "odconv_8x")


def test_only_restricts_a_measure_to_some_models(cli, tmp_path):
    (tmp_path / "mixed.toml").write_text(
        'measures = ["params", "latency"]\nmodels = ["resnet10_*", "resnet10"]\n'
        '[only]\nlatency = ["resnet10_odconv_1x"]\n'
        "[settings]\ninput_size = [3, 16, 16]\nrounds = 6\nmax_rounds = 6\nmin_run_time = 0.01\n"
        "warmup = 1\n"
    )
    assert cli("run", "--suite", "mixed.toml", "--json", "o.json").code == 0
    records = json.loads((tmp_path / "o.json").read_text())
    params = {r["model"] for r in records if r["metric"] == "params"}
    timed = {r["model"] for r in records if r["metric"] == "latency_ms"}
    assert params == {"resnet10", *(f"resnet10_{v}" for v in VARIANTS)}
    assert timed == {"resnet10", "resnet10_odconv_1x"}  # the baseline joins for the ratio
    (tmp_path / "bad.toml").write_text(
        'measures = ["params"]\nmodels = ["resnet10"]\n[only]\nlatency = ["resnet10"]\n'
    )
    result = cli("run", "--suite", "bad.toml")
    assert result.code == 2 and "[only] maps measures of the suite (params)" in result.stderr


def test_a_size_suite_on_two_processes_stores_what_one_process_stores(cli, tmp_path):
    def run(jobs: str) -> list[dict]:
        result = cli(
            "run", "--suite", "madds", "--models", "resnet10_odconv_*", "--input-size", "3,64,64",
            "--jobs", jobs, "--json", f"{jobs}.json", "--db", f"{jobs}.sqlite",
        )  # fmt: skip
        assert result.code == 0, result.stderr
        rows = json.loads((tmp_path / f"{jobs}.json").read_text())
        con = sqlite3.connect(tmp_path / f"{jobs}.sqlite")
        stored = con.execute("SELECT model, metric, method, value FROM measurements ORDER BY id")
        expected = [(r["model"], r["metric"], r["method"], r["value"]) for r in rows]
        assert stored.fetchall() == expected
        con.close()
        return [{k: v for k, v in r.items() if k != "run_id"} for r in rows]

    one, two = run("1"), run("2")
    # ODConv 1x, 2x, 3x, 4x, 8x: five counters and the weight bytes each
    assert len(one) == 5 * 6 and not any(r["metric"] == "error" for r in one)
    assert two == one


KILLER = '''
import os
import signal
import sqlite3
import time

from torch import nn

PARENT = os.getpid()


class Dies(nn.Module):
    """In a worker process, waits until another model's records are stored, then is killed
    by a signal, as the OOM killer would kill it; in the parent it is an ordinary model."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        if os.getpid() != PARENT:
            for _ in range(600):
                with sqlite3.connect("k.sqlite") as con:
                    if con.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]:
                        break
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
        return self.conv(x)


def dies():
    return Dies()
'''


def test_a_worker_killed_by_a_signal_ends_the_run_and_keeps_what_came_back(tmp_path):
    """A separate process with a time limit: a pool that waits for the dead worker's group
    forever fails here instead of hanging the tests."""
    (tmp_path / "killer.py").write_text(KILLER)
    result = subprocess.run(
        [
            sys.executable, "-m", "dynbench", "run", "--suite", "madds", "--counters",
            "conv_linear", "--models", "resnet10", "--model", "killer:dies", "--jobs", "2",
            "--db", "k.sqlite", "--json", "k.json",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith(
        "error: a worker process died (killed by a signal: out of memory, or a crash in "
        "native code); not measured: killer:dies; run "
    )
    assert line.endswith("kept 2 measurements in k.sqlite and is marked failed")
    con = sqlite3.connect(tmp_path / "k.sqlite")
    assert con.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    stored = con.execute("SELECT model, metric, method FROM measurements ORDER BY id").fetchall()
    con.close()
    assert stored == [
        ("resnet10", "madds", "conv_linear"),
        ("resnet10", "weight_bytes_per_image", "analytic"),
    ]
    written = json.loads((tmp_path / "k.json").read_text())
    assert [(r["model"], r["metric"], r["method"]) for r in written] == stored


def test_a_failing_store_fails_the_run_and_blames_no_model(cli, tmp_path, monkeypatch):
    """The store refuses the second record once: the run stops there, marked failed, and no
    error record says the model failed."""
    calls = []
    add = ResultStore.add

    def flaky_add(self, run_id, record, environment):
        calls.append(record.model)
        if len(calls) == 2:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error"))
        add(self, run_id, record, environment)

    monkeypatch.setattr(ResultStore, "add", flaky_add)
    result = cli(
        "run", "--suite", "madds", "--models", "resnet10", "--counters", "conv_linear,analytic",
        "--jobs", "1", "--db", "f.sqlite", "--json", "f.json",
    )  # fmt: skip
    assert result.code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: the store f.sqlite failed to store a measurement of resnet10 "
        "(OperationalError: disk I/O error); run "
    )
    assert lines[0].endswith("kept 1 measurements in f.sqlite and is marked failed")
    con = sqlite3.connect(tmp_path / "f.sqlite")
    assert con.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    stored = con.execute("SELECT model, metric, method FROM measurements").fetchall()
    con.close()
    assert stored == [("resnet10", "madds", "conv_linear")]
    assert [r["method"] for r in json.loads((tmp_path / "f.json").read_text())] == ["conv_linear"]


def test_a_store_that_also_fails_to_end_the_run_keeps_the_first_error(cli, tmp_path, monkeypatch):
    """Both the second record and the run's end fail to store: the error reported is the
    record's, and the end's failure follows it on the console."""
    calls = []
    add = ResultStore.add

    def flaky_add(self, run_id, record, environment):
        calls.append(record.model)
        if len(calls) == 2:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error"))
        add(self, run_id, record, environment)

    def broken_finish(self, run_id, status, finished):
        raise OperationalError("UPDATE", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(ResultStore, "add", flaky_add)
    monkeypatch.setattr(ResultStore, "finish_run", broken_finish)
    result = cli(
        "run", "--suite", "madds", "--models", "resnet10", "--counters", "conv_linear,analytic",
        "--jobs", "1", "--db", "f.sqlite",
    )  # fmt: skip
    assert result.code == 1
    assert "failed to store a measurement of resnet10" in result.stderr
    assert "also: the store f.sqlite failed to mark the run finished" in result.stderr


def test_a_json_file_that_cannot_be_written_still_ends_the_run(cli, tmp_path, monkeypatch):
    """The run is marked ended in the store before the ``--json`` file is written, and a
    failed write is a one-line error, not a run left 'running'."""

    def full_disk(path, outcome):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "write_json", full_disk)
    result = cli("run", "--suite", "params", "--models", "resnet10", "--db", "j.sqlite",
                 "--json", "j.json")  # fmt: skip
    assert result.code == 1
    assert result.stderr.strip() == "error: could not write j.json (No space left on device)"
    con = sqlite3.connect(tmp_path / "j.sqlite")
    assert con.execute("SELECT status FROM runs").fetchall() == [("complete",)]
    con.close()


def test_a_run_that_raises_is_marked_failed(cli, tmp_path, monkeypatch):
    """An exception that is no model's (here a stand-in for a bug of the runner) keeps its
    traceback, and the run it cut short says 'failed', not 'running'."""

    def broken(*args, **kwargs):
        raise RuntimeError("a bug of the runner")

    monkeypatch.setattr(runner, "_measure", broken)
    with pytest.raises(RuntimeError, match="a bug of the runner"):
        cli("run", "--suite", "params", "--models", "resnet10", "--jobs", "1", "--db", "b.sqlite")
    con = sqlite3.connect(tmp_path / "b.sqlite")
    runs = con.execute("SELECT status, finished IS NOT NULL FROM runs").fetchall()
    con.close()
    assert runs == [("failed", 1)]
