"""The batch sweep: per-image latency at each batch, the route each layer took, settings."""

import json
import os
import statistics

import pytest
import torch

from dynbench.run.batch_sweep import sweep_device, sweep_threads

TINY = (
    'measures = ["batch_sweep"]\nmodels = ["resnet10", "resnet10_dyconv_4x"]\n'
    '[settings]\ninput_size = [3, 32, 32]\nbatches = [5, 1]\ndevice = "cpu"\nrounds = 6\n'
    "max_rounds = 6\nmin_run_time = 0.01\nwarmup = 1\n"
)


def test_the_sweep_times_each_batch_per_image_and_records_the_route(cli, tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    result = cli("run", "--suite", "tiny.toml", "--json", "b.json")
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "b.json").read_text())
    by = {(r["model"], r["metric"], r["settings"]["batch"]): r for r in records}
    assert len(records) == 6 and len(by) == 6  # 2 models x 2 batches + 2 ratios
    for batch in (1, 5):
        base = by[("resnet10", "batch_latency_ms", batch)]
        dynamic = by[("resnet10_dyconv_4x", "batch_latency_ms", batch)]
        ratio = by[("resnet10_dyconv_4x", "batch_latency_ratio", batch)]
        assert base["settings"]["impl"] == "static" and base["unit"] == "ms/image"
        assert base["settings"]["device"] == "cpu"
        assert base["settings"]["threads"] == len(os.sched_getaffinity(0))
        # per image: the median call divided by the batch, its rounds and IQR likewise
        detail = dynamic["detail"]
        assert detail["rounds"] == 6 and len(detail["round_ms"]) == 6
        assert dynamic["value"] == pytest.approx(statistics.median(detail["round_ms"]), 1e-3)
        assert ratio["detail"]["baseline"] == "resnet10" and ratio["value"] > 0
        assert ratio["detail"]["ci95_low"] <= ratio["value"] <= ratio["detail"]["ci95_high"]
    # at batch 1 every DY-Conv forms its kernel; at 5 (> K = 4) the last stage's 512 -> 512
    # 3x3 conv (2,359,296 kernel elements, x 5 beyond the cache bound) runs the experts
    # route, its 256 -> 512 3x3 (half the elements) and its 1x1 downsample do not
    one = by[("resnet10_dyconv_4x", "batch_latency_ms", 1)]["detail"]["implementations"]
    five = by[("resnet10_dyconv_4x", "batch_latency_ms", 5)]["detail"]["implementations"]
    assert one == {"fast/mixed": 11}
    assert five == {"fast/experts": 1, "fast/mixed": 10}
    assert by[("resnet10_dyconv_4x", "batch_latency_ratio", 5)]["settings"]["impl"] == (
        "fast/experts,fast/mixed"
    )


@pytest.mark.parametrize(
    "setting, message",
    [
        ("batches = [0, 2]", "batches = [0, 2] is not a list of distinct positive integers"),
        ("batches = [2, 2]", "is not a list of distinct positive integers"),
        ('threads = "many"', "threads = 'many' is not 'all' or a positive integer"),
        ('device = "tpu"', "device = 'tpu' is not accepted"),
    ],
)
def test_bad_sweep_settings_are_refused_before_anything_runs(cli, tmp_path, setting, message):
    (tmp_path / "bad.toml").write_text(
        f'measures = ["batch_sweep"]\nmodels = ["resnet10"]\n[settings]\n{setting}\n'
    )
    result = cli("run", "--suite", "bad.toml")
    assert result.code == 2 and message in result.stderr


def test_device_and_threads_resolve(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sweep_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert sweep_device("auto") == "cuda" and sweep_device("cpu") == "cpu"
    assert sweep_threads("all") == len(os.sched_getaffinity(0)) and sweep_threads(3) == 3


def test_the_shipped_suite_sweeps_both_families_from_1_to_64(cli):
    result = cli("suites")
    assert result.code == 0 and "batch-sweep" in result.stdout
    from dynbench.run.suite import load_suite

    suite = load_suite("batch-sweep")
    assert suite.settings["batches"] == [1, 2, 4, 8, 16, 32, 64]
    assert {"resnet18", "mobilenetv2_100", "resnet18_odconv_4x"} <= set(suite.models)
    assert len(suite.models) == 12
