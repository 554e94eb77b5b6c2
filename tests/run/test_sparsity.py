"""The sparsity suite end to end on a small input, and its bad settings."""

import dataclasses
import json
import time

import pandas as pd
import torch

from dynbench.models.masked_blocks import set_granularity, set_mask_source
from dynbench.models.registry import find_model
from dynbench.ops.dynconv import MaskSource
from dynbench.report.mask_density import break_even, break_even_text
from dynbench.run.options import prepare
from dynbench.run.settings import SparsitySettings
from dynbench.run.sparsity import gpu_throughput


def test_sparsity_suite_records_every_point(cli, tmp_path):
    (tmp_path / "sp.toml").write_text(
        'measures = ["sparsity"]\nmodels = ["resnet50_dynconv"]\n[settings]\n'
        'input_size = [3, 64, 64]\ndensities = [0.0, 1.0]\nmasks = ["blob"]\n'
        "rounds = 6\nmax_rounds = 6\nmin_run_time = 0.01\nwarmup = 1\nallocator = 'pinned'\n"
    )
    result = cli("run", "--suite", "sp.toml", "--json", "sp.json")
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "sp.json").read_text())
    assert {r["model"] for r in records} == {"resnet50_dynconv"}  # the baseline is skipped
    madds = {
        (r["settings"]["density"], r["method"]): r["value"]
        for r in records
        if r["metric"] == "conditional_madds"
    }
    methods = ("dynconv", "conv_linear", "executed")
    assert set(madds) == {(d, m) for d in (0.0, 1.0) for m in methods}
    assert madds[(0.0, "dynconv")] < madds[(1.0, "dynconv")] < madds[(1.0, "conv_linear")]
    times = [r for r in records if r["metric"] == "spatial_latency_ms"]
    assert sorted((r["settings"]["density"], r["settings"]["execution"]) for r in times) == [
        (d, e) for d in (0.0, 1.0) for e in ("dense", "masked", "sparse")
    ]
    # the sparse records count the blocks' GEMMs by the library that ran them
    for r in times:
        products = r["detail"].get("implementations")
        if r["settings"]["execution"] != "sparse" or r["settings"]["impl"] == "sparse/dense":
            assert not products
        else:
            assert products and set(products) <= {"gemm/onednn", "gemm/addmm"}
            assert all(count > 0 for count in products.values())
    ratios = [r for r in records if r["metric"] == "spatial_latency_ratio"]
    assert {r["settings"]["execution"] for r in ratios} == {"masked", "sparse"}
    sparse = [r for r in ratios if r["settings"]["execution"] == "sparse"]
    # auto granularity: each block ran at pixels, tiles or densely, and the MAdds records say which
    assert all(
        set(r["settings"]["impl"].split(",")) <= {"sparse/pixel", "sparse/tile", "sparse/dense"}
        for r in sparse
    )
    assert all(
        r["settings"]["granularity"] == "auto" and r["settings"]["tile"] == 8 for r in sparse
    )
    blocks = [
        b for r in records if r["metric"] == "conditional_madds" for b in r["detail"]["blocks"]
    ]
    assert all(
        b["granularity"] in ("pixel", "tile", "dense")
        and set(b["trial_ms"])
        == ({"dense"} if b["dilated_density"] == 1 else {"pixel", "tile", "dense"})
        for b in blocks
    )
    assert not any(r["metric"] == "spatial_gpu_images_per_s" for r in records)  # no CUDA here
    assert all(r["settings"]["mask"] == "blob" for r in sparse)
    assert all(r["detail"]["ci95_low"] <= r["value"] <= r["detail"]["ci95_high"] for r in ratios)
    assert {r["detail"]["allocator"] for r in times} == {"pinned"}  # glibc here
    assert cli("report", "--out", "rep", "--format", "md").code == 0
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "## Spatial DynConv: latency against mask density" in report
    assert "break-even density" in report and (tmp_path / "rep" / "spatial-density.png").is_file()


def test_bad_sparsity_settings(cli, tmp_path):
    for line, message in (
        ("densities = [0.5, 1.5]", "densities [0.5, 1.5] must be a list of numbers in [0, 1]"),
        ("densities = [true]", "densities [True] must be a list of numbers in [0, 1]"),
        ('masks = ["stripes"]', "accepted: random, blob, patch, unit"),
        ('granularity = "rows"', "accepted: ('auto', 'pixel', 'tile')"),
        ("tile = 0", "tile = 0 is not a positive integer"),
        ('allocator = "jemalloc"', "accepted: ('pinned', 'system')"),
    ):
        (tmp_path / "bad.toml").write_text(
            f'measures = ["sparsity"]\nmodels = ["resnet50_dynconv"]\n[settings]\n{line}\n'
        )
        result = cli("run", "--suite", "bad.toml")
        assert result.code == 2 and message in result.stderr


GPU_SETTINGS = SparsitySettings(input_size=[3, 32, 32], gpu_batch=4, gpu_iterations=2, gpu_warmup=1)


def timer(call, iterations):
    start = time.perf_counter()
    for _ in range(iterations):
        call()
    return (time.perf_counter() - start) * 1e3


def test_gpu_throughput_of_the_three_executions_runs_on_any_device():
    """The CUDA path's code, run on the CPU with a wall-clock timer (CI has no GPU)."""
    info = find_model("resnet18_dynconv")
    model = info.builder().eval()
    settings = dataclasses.replace(GPU_SETTINGS, granularity="pixel")
    set_granularity(model, "pixel")
    source = MaskSource("blob", 0.25)
    set_mask_source(model, source)
    records = gpu_throughput(info, model, source, settings, device="cpu", timer=timer)
    assert [r.settings["execution"] for r in records] == ["dense", "masked", "sparse"]
    assert [r.settings["impl"] for r in records] == ["dense", "masked", "sparse/pixel"]
    assert all(r.metric == "spatial_gpu_images_per_s" and r.value > 0 for r in records)
    assert all(r.settings["batch"] == 4 and r.settings["density"] == 0.25 for r in records)


def test_gpu_throughput_takes_the_run_options_and_hands_the_model_back_as_it_was():
    """Under bf16 and channels-last the GPU path times what the CPU path times, and the
    model leaves it in bf16, so the next (mask, density) point still runs."""
    info = find_model("resnet18_dynconv")
    model = info.builder().eval()
    settings = dataclasses.replace(GPU_SETTINGS, dtype="bf16", channels_last=True)
    set_granularity(model, settings.granularity, settings.tile)
    prepared = prepare(model, torch.randn(1, 3, 32, 32), settings)
    seen = set()
    model.register_forward_pre_hook(
        lambda _, args: seen.add(
            (args[0].dtype, args[0].is_contiguous(memory_format=torch.channels_last))
        )
    )
    source = MaskSource("blob", 0.5)
    set_mask_source(model, source)
    records = gpu_throughput(info, model, source, settings, device="cpu", timer=timer)
    assert seen == {(torch.bfloat16, True)}
    assert all(r.value > 0 and r.detail["compile_s"] is None for r in records)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.inference_mode():
        assert prepared.model(prepared.x).dtype == torch.bfloat16  # the next point's call


def test_break_even_is_interpolated_where_sparse_crosses_dense():
    def points(*pairs):
        return pd.DataFrame([{"density": d, "ratio": r} for d, r in pairs])

    assert break_even(points((0.0, 0.4), (0.5, 0.8), (1.0, 1.2))) == 0.75
    assert break_even(points((0.0, 0.4), (1.0, 0.9))) == "above"
    assert break_even(points((0.1, 1.1), (1.0, 1.3))) == "below"
    assert break_even_text(points((0.1, 1.1), (1.0, 1.3))).startswith("below 0.1")


def test_gpu_points_are_taken_at_each_gpu_batch_steadily_and_cpu_latency_can_be_left_out(
    cli, tmp_path, monkeypatch
):
    """A GPU-only sparsity run (suites/sparsity-gpu.toml's settings), its CUDA path run on
    the CPU: MAdds records and, per execution, images/s at gpu_batch and at
    gpu_latency_batch with warm-up and timed blocks; no CPU latency records."""
    import dynbench.measure.environment as environment
    import dynbench.run.sparsity as sparsity_module

    real = sparsity_module.gpu_throughput
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(environment, "gpu_name", lambda: None)
    monkeypatch.setattr(environment, "gpu_driver", lambda: None)
    monkeypatch.setattr(
        sparsity_module,
        "gpu_throughput",
        lambda *a, **k: real(*a, **k, device="cpu", timer=timer),
    )
    (tmp_path / "g.toml").write_text(
        'measures = ["sparsity"]\nmodels = ["resnet18_dynconv"]\n[settings]\n'
        'input_size = [3, 32, 32]\ndensities = [0.5]\nmasks = ["blob"]\ncpu_latency = false\n'
        "gpu_batch = 3\ngpu_latency_batch = 1\ngpu_iterations = 2\ngpu_repeats = 2\n"
        'gpu_warmup_blocks = 2\ngranularity = "pixel"\n'
    )
    assert cli("run", "--suite", "g.toml", "--json", "g.json").code == 0
    records = json.loads((tmp_path / "g.json").read_text())
    metrics = {r["metric"] for r in records}
    assert metrics == {"conditional_madds", "spatial_gpu_images_per_s"}
    gpu = [r for r in records if r["metric"] == "spatial_gpu_images_per_s"]
    assert [(r["settings"]["batch"], r["settings"]["execution"]) for r in gpu] == [
        (3, "dense"), (3, "masked"), (3, "sparse"), (1, "dense"), (1, "masked"), (1, "sparse"),
    ]  # fmt: skip
    assert all(len(r["detail"]["block_ms"]) == 2 and r["detail"]["warmup_ms"] for r in gpu)
    assert all(r["detail"]["ms_per_call"] > 0 for r in gpu)
