"""Timing suites: interleaving, ratios, the GPU path's logic on CPU, profile traces."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from dynbench.measure.gpu import measure_throughput
from dynbench.measure.timing import Timed, interleaved, ratio_with_ci
from dynbench.models import model_info
from dynbench.run.runner import Target, families


def test_ratio_is_geometric_mean_of_round_ratios():
    base = Timed("b", round_medians=[1.0, 2.0, 1.0])
    variant = Timed("v", round_medians=[1.5, 3.0, 1.5])
    ratio, low, high = ratio_with_ci(variant, base)
    assert ratio == pytest.approx(1.5)
    assert low == pytest.approx(1.5) and high == pytest.approx(1.5)  # no spread across rounds
    noisy = Timed("n", round_medians=[1.4, 3.2, 1.5])
    ratio, low, high = ratio_with_ci(noisy, base)
    assert low < ratio < high
    assert math.isnan(ratio_with_ci(Timed("x", [2.0]), Timed("y", [1.0]))[1])


def test_interleaved_rounds_take_every_model_each_round():
    calls = {"a": lambda: sum(range(100)), "b": lambda: sum(range(200))}
    results = interleaved(calls, rounds=3, min_run_time=0.01, warmup=1)
    assert [len(results[n].round_medians) for n in calls] == [3, 3]
    assert all(t > 0 for t in results["b"].times)


def test_families_lead_with_baseline_and_add_it_when_missing():
    targets = [
        Target(model_info(n))
        for n in ("resnet10_odconv_1x", "mobilenetv2_035", "resnet10_dyconv_4x")
    ]
    groups = families(targets)
    assert [[t.info.name for t in g] for g in groups] == [
        ["resnet10", "resnet10_odconv_1x", "resnet10_dyconv_4x"],
        ["mobilenetv2_035"],
    ]


def test_throughput_logic_with_a_fake_timer():
    """The CUDA path's bookkeeping, run on the CPU with a timer standing in for CUDA events."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    calls = []

    def fake_timer(fn, iterations):
        for _ in range(iterations):
            calls.append(fn())
        return 250.0  # ms for all iterations

    result = measure_throughput(
        model, (3, 8, 8), batch=10, iterations=5, warmup=2, device="cpu", timer=fake_timer
    )
    assert len(calls) == 5 and calls[0].shape == (10, 4 * 6 * 6)
    assert result.images_per_s == pytest.approx(10 * 5 / 0.25)
    assert not result.oom


def test_out_of_memory_is_recorded_not_raised():
    class Exploding(nn.Module):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    result = measure_throughput(
        Exploding(), (3, 8, 8), batch=200, iterations=2, warmup=1, device="cpu"
    )
    assert result.oom and result.images_per_s is None


def test_throughput_suite_skips_without_cuda(cli, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = cli("run", "--suite", "throughput")
    assert result.code == 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "skipped" in lines[0] and "CUDA" in lines[0]


def test_latency_suite_end_to_end(cli, tmp_path):
    (tmp_path / "quick.toml").write_text(
        'measures = ["latency"]\nmodels = ["resnet10_odconv_1x"]\n'
        "[settings]\ninput_size = [3, 32, 32]\nrounds = 2\nmin_run_time = 0.05\nwarmup = 1\n"
    )
    result = cli("run", "--suite", "quick.toml", "--json", "l.json")
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "l.json").read_text())
    metrics = {(r["model"], r["metric"]) for r in records}
    assert ("resnet10", "latency_ms") in metrics  # the baseline was added for the ratio
    ratio = next(r for r in records if r["metric"] == "latency_ratio")
    assert ratio["model"] == "resnet10_odconv_1x" and ratio["unit"] == "x baseline"
    assert ratio["detail"]["ci95_low"] <= ratio["value"] <= ratio["detail"]["ci95_high"]
    latency = next(r for r in records if r["metric"] == "latency_ms")
    assert latency["detail"]["threads"] == 1 and "load_before" in latency["detail"]
    assert latency["settings"]["rounds"] == 2


def test_train_step_and_profile_suites(cli, tmp_path):
    (tmp_path / "train.toml").write_text(
        'measures = ["train_step"]\nmodels = ["resnet10", "resnet10_dyconv_4x"]\n'
        "[settings]\ninput_size = [3, 32, 32]\nbatch = 2\nrounds = 2\nmin_run_time = 0.05\n"
        'warmup = 1\ndevice = "cpu"\n'
    )
    assert cli("run", "--suite", "train.toml", "--json", "t.json").code == 0
    records = json.loads((tmp_path / "t.json").read_text())
    assert {r["metric"] for r in records} == {"train_step_ms_per_image", "train_step_ratio"}
    result = cli(
        "run",
        "--suite",
        "profile",
        "--models",
        "resnet10_odconv_1x",
        "--input-size",
        "3,32,32",
        "--json",
        "p.json",
    )
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "p.json").read_text())
    phases = {r["method"]: r["value"] for r in records}
    assert set(phases) == {"attention", "aggregation", "conv", "other", "forward"}
    assert phases["attention"] > 0 and phases["conv"] > 0
    assert phases["forward"] >= phases["attention"] + phases["conv"]
    trace = records[0]["detail"]["trace_files"][0]
    assert json.loads(Path(trace).read_text())["traceEvents"]


def test_bad_timing_settings(cli, tmp_path):
    (tmp_path / "bad.toml").write_text(
        'measures = ["latency"]\nmodels = ["resnet10"]\n[settings]\nrounds = 0\n'
    )
    result = cli("run", "--suite", "bad.toml")
    assert result.code == 2 and "rounds = 0 is not a positive integer" in result.stderr
    (tmp_path / "amp.toml").write_text(
        'measures = ["throughput"]\nmodels = ["resnet10"]\n[settings]\namp = "int4"\n'
    )
    result = cli("run", "--suite", "amp.toml")
    assert result.code == 2 and "amp" in result.stderr
