"""The latency floor in the report, from a constructed store: ceilings and layers in, floors,
overheads and the plot out."""

from dataclasses import replace

import pandas as pd
import pytest

from dynbench.report.floor import ceilings, floor_table
from dynbench.report.render import build_report, write_report
from tests.report.stores import BASE, DYCONV, frame, latency, record


def machine(gb_per_s=10.0, gmadds_per_s=100.0, scope="1 thread"):
    return [
        record("(machine)", "read_bandwidth", gb_per_s, scope, unit="GB/s"),
        record("(machine)", "gemm_rate", gmadds_per_s, scope, unit="GMAdds/s"),
    ]


def layers(model, *works):
    detail = {
        "layers": [
            {"layer": f"l{i}", "type": "Conv2d", "madds": m, "weight_bytes": w,
             "activation_bytes": a}
            for i, (m, w, a) in enumerate(works)
        ]
    }  # fmt: skip
    total = sum(w + a for _, w, a in works)
    return [record(model, "layer_bytes_per_image", total, "analytic", detail, unit="bytes")]


# at 100 GMAdds/s and 10 GB/s: l0 is compute-bound (10 ms > 2 ms), l1 memory-bound
BASE_LAYERS = layers("resnet18", (1e9, 1e7, 1e7), (1e8, 4e7, 1e7))  # 10 + 5 = 15 ms
DYCONV_LAYERS = layers("resnet18_dyconv_4x", (1e9, 1e7, 1e7), (1e8, 1.4e8, 1e7))  # 10 + 15
STORE = frame(
    BASE,
    DYCONV,
    BASE_LAYERS,
    DYCONV_LAYERS,
    machine(),
    machine(gb_per_s=20.0, gmadds_per_s=400.0, scope="all cores"),
    latency("resnet18", 40.0),
    latency("resnet18_dyconv_4x", 60.0, ratio=1.5, low=1.45, high=1.55),
)


def test_floors_and_overheads_from_the_single_thread_ceilings():
    limits = ceilings(STORE)
    assert (limits.gb_per_s, limits.gmadds_per_s) == (10.0, 100.0)
    table = floor_table(STORE, limits).set_index("model")
    assert table.loc["resnet18", "floor_ms"] == pytest.approx(15.0)
    assert table.loc["resnet18_dyconv_4x", "floor_ms"] == pytest.approx(25.0)
    assert table.loc["resnet18", "latency_over_floor"] == pytest.approx(40 / 15)
    dyconv = table.loc["resnet18_dyconv_4x"]
    assert dyconv["floor_overhead_ms"] == pytest.approx(10.0)
    assert dyconv["overhead_ms"] == pytest.approx(20.0)  # (1.5 - 1) x 40 ms
    assert (dyconv["overhead_low_ms"], dyconv["overhead_high_ms"]) == pytest.approx((18.0, 22.0))
    assert dyconv["floor_explains"] == pytest.approx(0.5)
    assert dyconv["overhead_over_floor"] == pytest.approx(2.0)
    assert dyconv["overhead_over_scaled_floor"] == pytest.approx(2.0 * 15 / 40)
    assert pd.isna(table.loc["resnet18", "overhead_ms"])


def test_report_renders_the_floor_columns_the_plot_and_the_csvs(tmp_path):
    names = {p.name for p in write_report(build_report(STORE), tmp_path)}
    assert {"floor.csv", "floor-layers.csv", "latency-vs-floor.png"} <= names
    markdown = (tmp_path / "report.md").read_text()
    section = markdown.split("## Latency floor")[1].split("\n## ")[0]
    assert (
        "read bandwidth 10.0 GB/s and fp32 GEMM rate 100.0 GMAdds/s, 1 thread, machine" in section
    )
    header = next(line for line in section.splitlines() if line.startswith("| Model"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "Model", "Floor ms", "Latency ms", "Latency / floor", "Floor overhead ms",
        "Overhead ms [95% CI]", "Floor explains", "Overhead / floor's", "… at base efficiency",
    ]  # fmt: skip
    row = next(line for line in section.splitlines() if "resnet18_dyconv_4x" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == [
        "resnet18_dyconv_4x", "25.00", "60.00", "2.40", "10.00", "20.00 [18.00, 22.00]", "50%",
        "2.00", "0.75",
    ]  # fmt: skip
    assert "(latency-vs-floor.png)" in section
    html = (tmp_path / "report.html").read_text()
    assert "Latency floor" in html and html.count("<svg") == 5
    layers = pd.read_csv(tmp_path / "floor-layers.csv")
    bound = layers.set_index(["model", "layer"])["bound"]
    assert bound[("resnet18", "l0")] == "compute" and bound[("resnet18", "l1")] == "memory"


def test_without_ceilings_the_section_says_which_suite_to_run():
    store = frame(BASE, BASE_LAYERS, latency("resnet18", 40.0))
    report = build_report(store)
    (section,) = [s for s in report.sections if s.id == "floor"]
    assert "run 'dynbench run --suite machine' into it" in section.blocks[0].text


def test_the_floor_uses_the_best_of_the_machines_ceilings():
    slower = [replace(r, run_id="run0") for r in machine(5.0, 50.0)]  # stored after: newer
    limits = ceilings(frame(machine(), slower))
    assert (limits.gb_per_s, limits.gmadds_per_s, limits.runs) == (10.0, 100.0, 2)
    assert "best of 2 measurement(s) (ranges 5.0-10.0 GB/s, 50.0-100.0 GMAdds/s)" in limits.text
