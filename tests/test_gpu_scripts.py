"""The GPU scripts' CPU-testable parts: compare-released.py --gpu's rounds and rows, the
profile script's arguments, and gpu-check.sh's steps (listed, not run)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


released = _load("compare-released")


class Counted(nn.Module):
    def __init__(self, name: str, log: list) -> None:
        super().__init__()
        self.name, self.log, self.conv = name, log, nn.Conv2d(3, 2, 1)

    def forward(self, x):
        self.log.append(self.name)
        return self.conv(x)


def test_gpu_rounds_warm_each_model_then_shuffle_one_block_each():
    log: list[str] = []
    models = {n: Counted(n, log) for n in ("static", "ours", "theirs")}
    times = {"static": [10.0, 10.0], "ours": [30.0, 20.0, 20.1], "theirs": [25.0] * 4}

    def timer(fn, iterations):
        fn()
        name = log[-1]
        return times[name].pop(0) if len(times[name]) > 1 else times[name][0]

    timed = released.gpu_interleaved(models, torch.randn(1, 3, 4, 4), 3, 5, timer, 4, 0.02)
    assert timed["ours"].warmup == (30.0, 20.0, 20.1) and timed["ours"].steady
    assert timed["static"].warmup == (10.0, 10.0) and timed["theirs"].warmup == (25.0, 25.0)
    rounds = log[-9:]
    assert [sorted(rounds[i : i + 3]) for i in (0, 3, 6)] == [sorted(models)] * 3
    assert rounds[0:3] != rounds[3:6] or rounds[3:6] != rounds[6:9]  # shuffled (seed 0)
    assert timed["ours"].blocks == [20.1] * 3 and timed["ours"].peak is None  # no CUDA


def _timed(blocks, peak=None):
    t = released.GpuTimed()
    t.blocks, t.peak = blocks, peak
    return t


def test_a_gpu_row_compares_throughput_ratio_and_memory():
    static = _timed([100.0, 100.0, 101.0])
    ours, theirs = (
        _timed([200.0, 201.0, 200.0], 3 * 2**30),
        _timed([250.0, 250.0, 250.0], 4 * 2**30),
    )
    row = released.gpu_row("resnet50", "odconv_1x", ours, theirs, static, 2000)
    assert row == (
        "| resnet50 | odconv_1x | 8,000 / 10,000 | 0.400 / 0.500 | 1.250 | 4.00 / 3.00 | "
        "0.0% / 0.5% | yes |"
    )
    slower = released.gpu_row("resnet50", "dcd", theirs, ours, _timed([100.0, 110.0, 100.0]), 2000)
    assert slower.endswith("| 0.800 | 3.00 / 4.00 | 0.5% / 0.0% | no (spread > 2%) |")


def test_gpu_mode_says_clearly_when_the_released_code_is_not_there(tmp_path, monkeypatch):
    args = ["--odconv", str(tmp_path), "--dcd", str(tmp_path), "--dyconv", str(tmp_path),
            "--condconv", str(tmp_path), "--gpu", "--device", "cpu"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["compare-released.py", *args])
    with pytest.raises(SystemExit) as stopped:
        released.main()
    assert str(stopped.value) == (
        f"released code not found: {tmp_path}/models/od_resnet.py (pass the repository's root)"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "resnet18,nope"], "error: unknown model(s) nope"),
        (["--models", "resnet18", "--blocks", "0"], "must be >= 1"),
    ],
)
def test_the_profile_script_refuses_bad_input(args, message, capsys):
    assert _load("gpu-profile").main(args) == 2
    assert message in capsys.readouterr().err


def test_the_gpu_check_script_lists_its_steps_with_their_limits():
    result = subprocess.run(
        ["bash", str(SCRIPTS / "gpu-check.sh"), "--list"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    steps = [line.split() for line in result.stdout.splitlines()]
    names = [s[1] for s in steps]
    assert names == [
        "env", "cuda-tests", "profile", "fp32-1", "fp32-2", "bf16", "released", "spatial",
        "routes", "sweep",
    ]  # fmt: skip
    assert {s[0] for s in steps} == {"A", "B", "C"}
    for part in "ABC":
        assert sum(int(s[2]) for s in steps if s[0] == part) <= 560  # one call's 600 s


def test_the_route_timings_say_their_device_and_the_cpu_rule_marks_cpu_rows_only(
    tmp_path, capsys, monkeypatch
):
    crossover = _load("experts-crossover")
    monkeypatch.setattr(crossover, "SHAPES", [(8, 8, 3, 1, 4)])
    monkeypatch.setattr(crossover, "PAIRS", 2)
    crossover.measure(1, "cpu", (2, 3))
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["device"], r["n"], r["b"]) for r in rows] == [
        ("cpu", 4, 2), ("cpu", 4, 3), ("cpu", 8, 2), ("cpu", 8, 3),
    ]  # fmt: skip
    assert all(r["mixed_ms"] > 0 and r["experts_ms"] > 0 and r["p"] == 16 for r in rows)
    gpu = [{**r, "device": "cuda", "b": 200} for r in rows]
    path = tmp_path / "routes.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows + gpu))
    crossover.render(str(path))
    table = capsys.readouterr().out
    assert "8->8 3x3/1, 16 positions, K=4 (cuda)" in table and "B=200" in table
    assert "*" not in table.split("(cuda)")[1].split("\n")[0]


def _throughput(model, value, spread, **detail):
    from dynbench.results.record import Record

    return Record(
        model=model, metric="gpu_images_per_s", value=value, method="cuda_events",
        settings={"dtype": "fp32"}, detail={"spread": spread, **detail},
    )  # fmt: skip


def test_the_steadiness_summary_answers_first_then_explains(tmp_path, capsys):
    from dynbench.results.store import ResultStore

    steadiness = _load("gpu-steadiness")
    explained = {
        "warmup_ms": [90.0, 80.0, 80.5], "steady": True, "host_syncs": 0,
        "allocator": [{"num_alloc_retries": 1, "num_device_alloc": 3, "num_device_free": 2},
                      {"num_alloc_retries": 0, "num_device_alloc": 1, "num_device_free": 1}],
        "gpu_before": {"sm_clock_mhz": 1980.0, "temperature_c": 35.0},
        "gpu_after": {"sm_clock_mhz": 1755.0, "temperature_c": 61.0},
    }  # fmt: skip
    runs = [
        [_throughput("static", 1000.0, 0.001), _throughput("dyn", 500.0, 0.30, **explained),
         _throughput("near", 300.0, 0.01), _throughput("bf", 9.0, 0.5)],
        [_throughput("static", 1010.0, 0.002), _throughput("dyn", 520.0, 0.01),
         _throughput("near", 310.0, 0.01)],
    ]  # fmt: skip
    runs[0][3].settings["dtype"] = "bf16"  # another dtype: not in the fp32 summary
    db = tmp_path / "g.sqlite"
    with ResultStore(db) as store:
        for records in runs:
            run = store.start_run("throughput", {"timestamp": "2026-12-07T10:00:00"})
            for record in records:
                store.add(run, record, {})
    assert steadiness.main([str(db)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "1 of 3 models steady (every block spread <= 2%, last two runs within 2%)",
        "  dyn: blocks spread 30.0%",
        "  near: last two runs 3.3% apart",
    ]
    assert "| dyn | 1 | 500 | 30.0% | 3 | 1 | 4 | 3 | 0 | 1980 -> 1755 | 35 -> 61 |" in out
    assert "| static | 2 | 1,010 | 0.2% | - | - | - | - | - | - | - |" in out
    assert steadiness.main([str(db), "--dtype", "fp16"]) == 2
    assert "no fp16 gpu_images_per_s records" in capsys.readouterr().err
