"""The spatial DynConv report tables on constructed stores."""

from dynbench.report.mask_density import gpu_table, spatial_points
from tests.report.stores import frame, record


def _gpu(execution, value, density=0.25, batch=200):
    settings = {"mask": "blob", "density": density, "execution": execution, "batch": batch}
    return record(
        "resnet50_dynconv", "spatial_gpu_images_per_s", value, "cuda_events", {}, settings
    )


def test_gpu_table_sets_the_three_executions_side_by_side():
    table = gpu_table(frame([_gpu("dense", 1000.0), _gpu("masked", 800.0), _gpu("sparse", 1250.0)]))
    row = table.iloc[0].to_dict()
    assert row["Batch"] == 200 and row["Density"] == "0.25"
    assert row["dense (images/s)"] == "1000" and row["sparse (images/s)"] == "1250"
    assert row["Sparse / dense"] == "1.250"


def test_gpu_table_keeps_each_batch_apart():
    """suites/sparsity-gpu.toml times batch 200 and batch 1: one row each, neither record
    taken for the other's."""
    table = gpu_table(
        frame([_gpu("dense", 1000.0), _gpu("sparse", 1250.0),
               _gpu("dense", 90.0, batch=1), _gpu("sparse", 45.0, batch=1)])
    )  # fmt: skip
    rows = {r["Batch"]: r for r in table.to_dict("records")}
    assert rows[200]["Sparse / dense"] == "1.250" and rows[1]["Sparse / dense"] == "0.500"


def test_gpu_table_marks_an_out_of_memory_execution_and_is_empty_without_gpu_records():
    table = gpu_table(frame([_gpu("dense", 1000.0), _gpu("sparse", None)]))
    assert table.iloc[0]["sparse (images/s)"] == "OOM" and table.iloc[0]["Sparse / dense"] == ""
    assert gpu_table(frame([record("m", "params", 1.0, "torch")])).empty


def test_points_count_the_blocks_at_each_granularity():
    where = {"mask": "blob", "density": 0.25}
    blocks = [{"block": i, "granularity": "tile" if i < 2 else "pixel"} for i in range(5)]
    timing = {"rounds": 20, "ci95_low": 0.6, "ci95_high": 0.62}
    rows = [
        record("m", "conditional_madds", 5.0, "dynconv", {"blocks": blocks}, where),
        record(
            "m",
            "spatial_latency_ratio",
            0.61,
            "interleaved",
            timing,
            {**where, "execution": "sparse"},
        ),
    ]
    points = spatial_points(frame(rows))
    assert points.iloc[0]["granularity"] == "pixel 3, tile 2"
