"""Timing suites: interleaving, ratios, the GPU path's logic on CPU, profile traces."""

import json
import math
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from dynbench.measure.gpu import measure_throughput
from dynbench.measure.timing import (
    Timed,
    interleaved,
    median_ci,
    ratio_with_ci,
    train_step_call,
)
from dynbench.models import create_model, model_info
from dynbench.run.family import Target, families
from dynbench.run.measures import LATENCY_SETTINGS
from dynbench.run.timed import latency


def test_ratio_is_median_of_paired_round_ratios():
    base = Timed("b", times=[1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 3.0])
    variant = Timed("v", times=[1.5 * t for t in base.times])
    ratio, low, high = ratio_with_ci(variant, base)
    assert ratio == pytest.approx(1.5)
    assert low == pytest.approx(1.5) and high == pytest.approx(1.5)  # no spread across rounds
    # one round hit by a burst of load on the variant's side only moves the median little
    burst = Timed("n", times=[1.5, 3.0, 1.5, 1.5, 3.0, 1.5, 9.0])
    ratio, low, high = ratio_with_ci(burst, base)
    assert ratio == pytest.approx(1.5) and high == pytest.approx(3.0)
    noisy = Timed("n", times=[1.4, 3.2, 1.5, 1.6, 2.9, 1.7, 4.4])
    ratio, low, high = ratio_with_ci(noisy, base)
    assert low < ratio < high


def test_median_interval_uses_binomial_order_statistics():
    values = [float(v) for v in range(1, 21)]
    # n = 20: P(Bin(20, 1/2) <= 5) = 0.0207 <= 0.025 < P(<= 6), so the 6th and 15th values
    assert median_ci(values) == (6.0, 15.0)
    assert median_ci(values[:6]) == (1.0, 6.0)  # 1 - 2/64 = 96.9%
    assert all(math.isnan(v) for v in median_ci(values[:5]))  # 5 samples cannot give 95%


def test_interleaved_runs_rounds_until_each_callable_has_min_run_time():
    calls = {"a": lambda: time.sleep(0.004), "b": lambda: time.sleep(0.002)}
    results = interleaved(calls, rounds=3, min_run_time=0.05, warmup=1, block_time=0.001)
    assert not results.interrupted
    assert len(results.timed["a"].times) == len(results.timed["b"].times) == results.rounds
    assert results.rounds >= 0.05 / 0.002 - 1  # b is the faster one: it sets the count
    assert all(t.measured_s >= 0.05 for t in results.timed.values())
    fast = interleaved({"f": lambda: None}, rounds=4, min_run_time=1e-6, warmup=2)
    assert fast.rounds == 4 and fast.timed["f"].measured_s >= 4 * 0.02  # blocks last block_time


# A callable slower than block_time gets two calls a turn: blocked_autorange's untimed
# block-size estimate, then one timed call. The warm-up (timeit) makes three calls.
SLOW_CALL, BLOCK = 0.002, 0.001


def test_interleaved_goes_on_until_precise_enough_or_max_rounds():
    calls = {"a": lambda: None, "b": lambda: None}
    asked: list[int] = []

    def after_round_15(timed: dict) -> bool:
        asked.append(len(timed["a"].times))
        return len(timed["a"].times) >= 15

    kw = {"min_run_time": 1e-9, "warmup": 1, "block_time": 1e-4}
    results = interleaved(calls, 10, precise_enough=after_round_15, max_rounds=40, **kw)
    assert results.rounds == 15 and asked[0] == 10  # not asked before the minimum rounds
    never = interleaved(calls, 10, precise_enough=lambda timed: False, max_rounds=25, **kw)
    assert never.rounds == 25
    assert interleaved(calls, 10, precise_enough=lambda t: False, **kw).rounds == 10


def test_interleaved_shuffles_the_order_of_every_round():
    seen: list[str] = []

    def call(name: str) -> None:
        seen.append(name)
        time.sleep(SLOW_CALL)

    calls = {n: (lambda n=n: call(n)) for n in "abcd"}
    interleaved(calls, rounds=10, min_run_time=1e-9, warmup=1, block_time=BLOCK)
    turns = seen[4 * 3 :: 2]  # after the warm-up, the first call of every turn
    rounds = [tuple(turns[i : i + 4]) for i in range(0, 40, 4)]
    assert all(sorted(r) == list("abcd") for r in rounds)
    assert len(set(rounds)) > 3


def test_interleaved_keeps_complete_rounds_on_ctrl_c():
    count = {"n": 0}

    def dies_on_the_twelfth_call() -> None:
        count["n"] += 1
        if count["n"] == 12:
            raise KeyboardInterrupt
        time.sleep(SLOW_CALL)

    calls = {"a": lambda: time.sleep(SLOW_CALL), "b": dies_on_the_twelfth_call}
    results = interleaved(calls, rounds=50, min_run_time=1e-9, warmup=1, block_time=BLOCK)
    assert results.interrupted and results.rounds == 4  # calls 4-11 were rounds 1-4
    assert [len(t.times) for t in results.timed.values()] == [4, 4]


class Dies(nn.Module):
    """A small conv that raises KeyboardInterrupt on its ``after``-th call."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.conv, self.calls, self.after = nn.Conv2d(3, 4, 3), 0, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        time.sleep(SLOW_CALL)
        return self.conv(x)


def _latency_until_ctrl_c(after: int) -> list:
    members = [
        (model_info("resnet10"), Dies(10**9)),
        (model_info("resnet10_odconv_1x"), Dies(after)),
    ]
    settings = {**LATENCY_SETTINGS, "input_size": (3, 8, 8), "warmup": 1, "block_time": BLOCK}
    records = []
    with pytest.raises(KeyboardInterrupt):
        latency(members, settings, records.append, lambda status: None)
    return records


def test_latency_group_stores_what_it_measured_before_ctrl_c():
    records = _latency_until_ctrl_c(12)  # 3 warm-up calls, 2 a round: dies in round 5
    latency = {r.model: r for r in records if r.metric == "latency_ms"}
    assert set(latency) == {"resnet10", "resnet10_odconv_1x"}
    assert latency["resnet10"].detail["interrupted"] and latency["resnet10"].detail["rounds"] == 4
    assert len(latency["resnet10"].detail["round_ms"]) == 4
    assert any(r.metric == "latency_ratio" for r in records)


def test_ctrl_c_in_the_first_round_stops_cleanly_with_nothing_stored():
    assert _latency_until_ctrl_c(4) == []  # round 1: no median to take, no crash taking one


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
        "[settings]\ninput_size = [3, 32, 32]\nrounds = 8\nmax_rounds = 12\nmin_run_time = 0.05\n"
        "warmup = 1\n"
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
    assert latency["settings"]["rounds"] == 8 and latency["detail"]["rounds"] >= 8


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


def test_train_step_labels_follow_the_model_classes():
    """A 10-class CIFAR model gets labels in [0, 10): a fixed 1000 would crash the loss."""
    model = create_model("resnet18_cifar")
    step = train_step_call(model, batch=2, input_size=(3, 32, 32))
    before = model.fc.weight.detach().clone()
    loss = step()
    assert torch.isfinite(loss) and not torch.equal(before, model.fc.weight)  # SGD stepped
