"""The latency suite's options: --compile (compile time apart, failures recorded),
--dtype, --channels-last and --threads, each in the record's settings."""

import json
import textwrap

import pytest
import torch

SUITE = """
measures = ["latency"]
models = ["resnet10"]
[settings]
input_size = [3, 16, 16]
rounds = 3
max_rounds = 4
min_run_time = 0.05
warmup = 1
"""

MODELS = '''
import torch
from torch import nn


def net():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))


class Refuses(nn.Module):
    """Runs eagerly; the test's compiler refuses it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x)


def refuses():
    return Refuses()
'''


@pytest.fixture
def suite(tmp_path):
    (tmp_path / "tiny.toml").write_text(SUITE)
    (tmp_path / "tiny_models.py").write_text(textwrap.dedent(MODELS))
    return "tiny.toml"


def _records(tmp_path, name):
    return json.loads((tmp_path / name).read_text())


def test_compile_records_compile_time_and_failures(cli, tmp_path, suite, monkeypatch):
    real = torch.compile

    def compiler(model, mode):  # torch.compile, refusing one model as inductor may
        if type(model).__name__ != "Refuses":
            return real(model, mode=mode)

        def refuse(x):
            raise RuntimeError("per-sample kernels not supported here")

        return refuse

    monkeypatch.setattr(torch, "compile", compiler)
    args = ["run", "--suite", suite, "--model", "tiny_models:net"]
    result = cli(*args, "--model", "tiny_models:refuses", "--compile", "--json", "c.json")
    assert result.code == 1, result.stderr  # a model failed: listed, the run went on
    records = _records(tmp_path, "c.json")
    timed = [r for r in records if r["metric"] == "latency_ms"]
    assert [r["model"] for r in timed] == ["tiny_models:net"]
    assert timed[0]["settings"]["compile"] is True
    assert timed[0]["settings"]["compile_mode"] == "default"
    assert timed[0]["detail"]["compile_s"] > 0
    failed = [r for r in records if r["metric"] == "error"]
    assert [(r["model"], r["method"]) for r in failed] == [("tiny_models:refuses", "compile")]
    assert "per-sample kernels not supported here" in failed[0]["detail"]["error"]


def test_dtype_layout_and_threads_land_in_the_settings(cli, tmp_path, suite):
    result = cli(
        "run",
        "--suite",
        suite,
        "--model",
        "tiny_models:net",
        "--dtype",
        "bf16",
        "--channels-last",
        "--threads",
        "2",
        "--json",
        "d.json",
    )
    assert result.code == 0, result.stderr
    (timed,) = [r for r in _records(tmp_path, "d.json") if r["metric"] == "latency_ms"]
    settings = timed["settings"]
    assert (settings["dtype"], settings["channels_last"], settings["threads"]) == ("bf16", True, 2)
    assert settings["compile"] is False
    assert timed["detail"]["threads"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dtype", "fp64"], "dtype = 'fp64' is not accepted; accepted: fp32, bf16, fp16"),
        (["--threads", "0"], "threads = 0 is not a positive integer"),
        (["--compile-mode", "fast"], "compile_mode = 'fast' is not accepted"),
    ],
)
def test_bad_options_are_refused(cli, suite, args, message):
    result = cli("run", "--suite", suite, "--model", "tiny_models:net", *args)
    assert result.code == 2
    assert message in result.stderr


def test_options_need_a_timing_suite(cli):
    for args in (["--compile"], ["--dtype", "bf16"]):
        result = cli("run", "--suite", "params", *args)
        assert result.code == 2
        assert result.stderr.strip().splitlines() == [
            f"error: {args[0]} applies to the measures latency, throughput, batch_sweep, "
            "train_step, sparsity; suite 'params' measures params"
        ]


STRICT_MODELS = '''
import torch
from torch import nn


class Strict(nn.Module):
    """Refuses any input but a bf16 channels-last batch: a run that succeeds used both."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if x.dtype != torch.bfloat16 or not x.is_contiguous(memory_format=torch.channels_last):
            raise TypeError(f"got {x.dtype}, not a bf16 channels-last batch")
        return self.fc(self.conv(x).mean((2, 3)))


def strict():
    return Strict()
'''


def test_train_step_runs_in_the_dtype_and_layout_asked(cli, tmp_path):
    (tmp_path / "strict_models.py").write_text(textwrap.dedent(STRICT_MODELS))
    (tmp_path / "train.toml").write_text(
        'measures = ["train_step"]\nmodels = ["resnet10"]\n[settings]\ninput_size = [3, 8, 8]\n'
        'device = "cpu"\nbatch = 2\nrounds = 2\nmin_run_time = 0.01\nwarmup = 1\n'
    )
    args = ["run", "--suite", "train.toml", "--model", "strict_models:strict", "--json", "t.json"]
    assert cli(*args).code == 1  # fp32 contiguous: the model refuses, an error record says so
    assert cli(*args, "--dtype", "bf16", "--channels-last").code == 0
    (step,) = [r for r in _records(tmp_path, "t.json") if r["metric"] == "train_step_ms_per_image"]
    assert (step["settings"]["dtype"], step["settings"]["channels_last"]) == ("bf16", True)
    assert step["value"] > 0


def test_sparsity_suite_takes_the_options(cli, tmp_path):
    (tmp_path / "sp.toml").write_text(
        'measures = ["sparsity"]\nmodels = ["resnet18_dynconv"]\n[settings]\n'
        'input_size = [3, 32, 32]\ndensities = [0.5]\nmasks = ["blob"]\n'
        "rounds = 2\nmax_rounds = 2\nmin_run_time = 0.01\nwarmup = 1\n"
    )
    args = ["run", "--suite", "sp.toml", "--dtype", "bf16", "--channels-last", "--json", "s.json"]
    result = cli(*args)
    assert result.code == 0, result.stderr
    records = _records(tmp_path, "s.json")
    times = [r for r in records if r["metric"] == "spatial_latency_ms"]
    assert len(times) == 3 and all(r["value"] > 0 for r in times)
    assert {(r["settings"]["dtype"], r["settings"]["channels_last"]) for r in times} == {
        ("bf16", True)
    }
    assert {r["settings"]["threads"] for r in times} == {1}
