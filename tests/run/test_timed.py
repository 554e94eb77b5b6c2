"""The timing measures: families, Ctrl-C in a family, the timing suites end to end."""

import json
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from dynbench.models import model_info
from dynbench.run.family import Target, families
from dynbench.run.settings import LatencySettings, ThroughputSettings
from dynbench.run.timed import latency, throughput

# A callable slower than block_time gets two calls a turn: blocked_autorange's untimed
# block-size estimate, then one timed call. The warm-up (timeit) makes three calls.
SLOW_CALL, BLOCK = 0.002, 0.001


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
    settings = LatencySettings(input_size=(3, 8, 8), warmup=1, block_time=BLOCK)
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


def test_the_throughput_record_carries_what_shows_steadiness():
    """The throughput measure's records, built on the CPU (the wall clock standing in for
    CUDA events): every timed and warm-up block, their spread, the allocator deltas and
    the state readings are in the detail, and the images/s is the median block's."""
    info = model_info("resnet10")
    settings = ThroughputSettings(
        device="cpu", input_size=[3, 32, 32], batch=2, iterations=2, repeats=3, warmup=1,
        max_warmup_blocks=3,
    )  # fmt: skip
    speed, memory = throughput(info, info.builder(), settings)
    assert (speed.metric, speed.method) == ("gpu_images_per_s", "wall_clock")
    assert memory.metric == "gpu_peak_memory" and memory.value is None  # no CUDA memory
    detail = speed.detail
    assert len(detail["block_ms"]) == 3 and 1 <= len(detail["warmup_ms"]) <= 3
    median = sorted(detail["block_ms"])[1]
    assert speed.value == pytest.approx(2 * 2 / (median / 1000), rel=1e-3)
    spread = (max(detail["block_ms"]) - min(detail["block_ms"])) / detail["elapsed_ms"]
    assert detail["spread"] == pytest.approx(spread, abs=1e-3)
    assert detail["steady"] in (True, False) and detail["allocator"] == [{}, {}, {}]
    assert detail["gpu"] == "cpu" and detail["memory_reserve_gib"] == 0.0
    assert {"gpu_before", "gpu_after", "host_syncs", "cudnn_benchmark"} <= set(detail)


@pytest.mark.parametrize(
    "line, message",
    [
        ("max_warmup_blocks = -1", "max_warmup_blocks = -1 is not an integer >= 0"),
        ("max_warmup_blocks = 1.5", "max_warmup_blocks = 1.5 is not an integer >= 0"),
        ("memory_reserve_gib = -2", "memory_reserve_gib = -2 is not a number >= 0"),
        ("steady_tolerance = 0", "steady_tolerance = 0 is not a positive number"),
    ],
)
def test_bad_steadiness_settings(cli, tmp_path, line, message):
    (tmp_path / "s.toml").write_text(
        f'measures = ["throughput"]\nmodels = ["resnet10"]\n[settings]\n{line}\n'
    )
    result = cli("run", "--suite", "s.toml")
    assert result.code == 2 and message in result.stderr


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


def test_timing_records_say_which_implementation_ran(cli, tmp_path):
    (tmp_path / "impl.toml").write_text(
        'measures = ["latency"]\nmodels = ["resnet10_dcd", "resnet10_odconv_1x"]\n'
        "[settings]\ninput_size = [3, 32, 32]\nrounds = 6\nmax_rounds = 6\nmin_run_time = 0.01\n"
        "warmup = 1\n"
    )
    assert cli("run", "--suite", "impl.toml", "--json", "i.json").code == 0
    records = json.loads((tmp_path / "i.json").read_text())
    impl = {(r["model"], r["metric"]): r["settings"]["impl"] for r in records}
    assert impl[("resnet10", "latency_ms")] == "static"
    # the 3x3 layers with C_out >= 4 H'W' (512 channels at 1 x 1 here) take the input route
    assert impl[("resnet10_odconv_1x", "latency_ratio")] == "fast/input,fast/mixed"
    dcd = next(r for r in records if r["model"] == "resnet10_dcd" and r["metric"] == "latency_ms")
    routes = dcd["detail"]["implementations"]
    assert dcd["settings"]["impl"] == ",".join(routes)
    assert sum(routes.values()) == 9 and "fast/fold-feature-maps" in routes
