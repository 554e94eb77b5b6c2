"""The GPU scripts' CPU-testable parts: compare-released.py's arguments (its rounds and
rows: tests/measure/test_gpu_rounds.py, test_side_by_side.py,
tests/report/test_released_tables.py), the profile script's arguments, and gpu-check.sh's
steps (listed, not run)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


released = _load("compare-released")


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
        (["--backbones", "resnet18,vgg16"], "unknown ['vgg16']; accepted: resnet18, resnet50"),
        (["--variants", "dcd_2x"], "unknown ['dcd_2x']; accepted: odconv_1x, odconv_4x"),
        (["--gpu", "--device", "cpu", "--iterations", "0"], "--gpu-rounds must be >= 1"),
        (["--gpu", "--profile"], "not allowed with argument --gpu"),
    ],
)
def test_compare_released_refuses_bad_input_in_one_line(tmp_path, args, message, capsys):
    paths = [f"--{repo}={tmp_path}" for repo in ("odconv", "dcd", "dyconv", "condconv")]
    with pytest.raises(SystemExit) as stopped:
        released.main([*paths, *args])
    assert stopped.value.code == 2 and message in capsys.readouterr().err


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
