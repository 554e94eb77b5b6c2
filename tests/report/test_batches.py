"""The batch sweep in the report: points, best batch, experts-from, the plot and the CSV."""

import pandas as pd

from dynbench.report.batches import sweep_points, sweep_table
from dynbench.report.markdown import to_markdown
from dynbench.report.render import build_report, write_report
from tests.report.stores import frame, record

METHOD = "torch.utils.benchmark"
# (batch, ms per image: baseline, DY-Conv; DY-Conv's ratio; DY-Conv's implementation)
SWEEP = [
    (1, 20.0, 30.0, 1.50, "fast/mixed"),
    (2, 12.0, 21.6, 1.80, "fast/mixed"),
    (8, 10.0, 13.0, 1.30, "fast/experts,fast/mixed"),
    (64, 9.0, 12.6, 1.40, "fast/experts,fast/mixed"),
]


def _sweep_store(iqr: float = 0.03) -> pd.DataFrame:
    rows = []
    for batch, base_ms, dy_ms, ratio, impl in SWEEP:
        common = {"batch": batch, "device": "cpu", "threads": 2}
        detail = {"iqr_over_median": iqr, "minor_faults_per_call": 1.0, "load_before": 1.1}
        rows.append(
            record(
                "resnet18",
                "batch_latency_ms",
                base_ms,
                METHOD,
                detail,
                {**common, "impl": "static"},
            )
        )
        rows.append(
            record(
                "resnet18_dyconv_4x",
                "batch_latency_ms",
                dy_ms,
                METHOD,
                detail,
                {**common, "impl": impl},
            )
        )
        ratio_detail = {"baseline": "resnet18", "ci95_low": ratio - 0.01, "ci95_high": ratio + 0.01}
        rows.append(
            record(
                "resnet18_dyconv_4x",
                "batch_latency_ratio",
                ratio,
                METHOD,
                ratio_detail,
                {**common, "impl": impl},
            )
        )
    return frame(rows)


def test_points_keep_every_batch_and_the_route():
    points = sweep_points(_sweep_store())
    dy = points[points["model"] == "resnet18_dyconv_4x"].set_index("batch")
    assert list(dy.index) == [1, 2, 8, 64]
    assert dy.loc[2, "ratio"] == 1.80 and dy.loc[2, "low"] == 1.79
    assert list(dy["experts"]) == [False, False, True, True]
    base = points[points["model"] == "resnet18"]
    assert set(base["ratio"]) == {1.0} and list(base["ms_per_image"]) == [20.0, 12.0, 10.0, 9.0]


def test_table_names_the_ratio_at_both_ends_the_best_batch_and_experts_from():
    table = sweep_table(sweep_points(_sweep_store())).set_index("Model")
    dy = table.loc["resnet18_dyconv_4x"]
    assert dy["ms/image @1"] == "30.00" and dy["ms/image @64"] == "12.60"
    assert dy["× @1"] == "1.500" and dy["× @64"] == "1.400"
    assert dy["Best batch (×)"] == "8 (1.300)"
    assert dy["Experts from"] == "8" and dy["Noisy batches"] == ""
    base = table.loc["resnet18"]
    assert base["× @1"] == "" and base["Best batch (×)"] == "" and base["Experts from"] == ""


def test_noisy_batches_are_listed():
    table = sweep_table(sweep_points(_sweep_store(iqr=0.2))).set_index("Model")
    assert table.loc["resnet18_dyconv_4x", "Noisy batches"] == "1, 2, 8, 64"


def test_report_renders_the_plot_and_the_csv(tmp_path):
    report = build_report(_sweep_store())
    section = next(s for s in report.sections if s.id == "batch-sweep")
    figure = next(b.figure for b in section.blocks if b.figure is not None)
    assert figure.name == "batch-sweep" and figure.png.startswith(b"\x89PNG")
    assert "<svg" in figure.svg and "resnet18 (cpu)" in figure.svg
    assert section.blocks[0].text.startswith("Quiet")
    written = {p.name for p in write_report(report, tmp_path)}
    assert {"batch-sweep.png", "batch-sweep.csv", "report.md", "report.html"} <= written
    csv = pd.read_csv(tmp_path / "batch-sweep.csv")
    assert len(csv) == 8 and set(csv["batch"]) == {1, 2, 8, 64}
    assert "![Latency per image against batch](batch-sweep.png)" in to_markdown(report)


def test_no_sweep_records_no_section():
    store = _sweep_store()
    store = store[store["metric"] != "batch_latency_ms"]
    assert all(s.id != "batch-sweep" for s in build_report(store).sections)
