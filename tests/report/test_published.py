"""The published data loads, parses printed precision, and the comparison judges it."""

import pandas as pd
import pytest

from dynbench.published import load_published, parse_printed, published_models
from dynbench.report.published_sizes import (
    EFFICIENCY_COLUMNS,
    TIMED_ELSEWHERE,
    clean_label,
    compare_published,
    match,
    uncompared_published,
)
from dynbench.report.published_speeds import compare_published_speed, minutes
from tests.report.stores import frame, record


def test_parse_printed():
    assert parse_printed("22.88M") == (22_880_000.0, 10_000.0)
    assert parse_printed("1.814G") == pytest.approx((1.814e9, 1e6))
    assert parse_printed("300.8M") == pytest.approx((300.8e6, 1e5))
    assert parse_printed("") == (None, None)


def test_every_odconv_main_table_row_is_present():
    data = load_published()
    odconv = data[data["source"].str.startswith("003")]
    assert {"resnet18_odconv_4x", "mobilenetv2_050_odconv_1x", "resnet101_v1_odconv_2x"} <= set(
        odconv["model"]
    )
    row = odconv[(odconv["model"] == "resnet18_condconv_8x")].iloc[0]
    assert (row["params"], row["madds"]) == ("81.35M", "1.894G")
    # the conflicts the issue names are recorded on the rows
    dcd_paper = data[data["source"].str.startswith("002")]
    condconv = dcd_paper[dcd_paper["model"] == "mobilenetv2_100_condconv_8x_os16"].iloc[0]
    assert condconv["params"] == "27.5M" and "conflict" in condconv["note"].lower()
    dyconv = dcd_paper[dcd_paper["model"] == "resnet18_dyconv_4x"].iloc[0]
    assert dyconv["params"] == "42.7M" and "conflict" in dyconv["note"].lower()
    assert "resnet50_v1" in published_models()


def test_match_honours_printed_precision():
    assert match(11_943_944, 11.94e6, 1e4) == "✓"
    assert match(45_475_008, 45.47e6, 1e4) == "≈"  # rounds half-up to 45.48M
    assert match(45_475_008, 42.7e6, 1e5) == "✗"
    assert match(None, 1.0, 1.0) == ""


def test_clean_label():
    assert clean_label(r"+ CondConv ( $8\times$ )") == "+ CondConv (8×)"


def test_comparison_rows():
    measured = frame(
        [
            record("resnet18", "params", 11_689_512.0, "count"),
            record("resnet18", "params_no_classifier", 11_176_512.0, "count"),
            record("resnet18", "madds", 1_814_073_344.0, "conv_linear"),
            record("resnet18", "madds", 1_819_065_856.0, "fvcore"),
        ]
    )
    table = compare_published(measured)
    odconv = table[(table["source"] == "003") & (table["table"] == "ResNet ImageNet")].iloc[0]
    assert odconv["params_ok"] == "✓" and odconv["madds_ok"] == "✓ conv_linear"
    assert odconv["fvcore_Δ%"] == pytest.approx(0.28, abs=0.01)
    dcd = table[(table["source"] == "002") & (table["row"] == "static")].iloc[0]
    # the section's convention, 2^20 units: 11,689,512 is 11.148, 0.2% from 11.15
    assert dcd["params_ok"] == "✓ fragile"
    assert dcd["convention"] == "ResNet-18: 2^20 units, with the classifier, half-up"


def test_backbone_rows_compare_params_without_the_classifier():
    measured = frame(
        [
            record("resnet50_v1", "params", 25_557_032.0, "count"),
            record("resnet50_v1", "params_no_classifier", 23_508_032.0, "count"),
        ]
    )
    table = compare_published(measured)
    backbone = table[table["table"] == "MS-COCO 2017 backbones (in parentheses)"].iloc[0]
    assert (backbone["params_pub"], backbone["params"]) == ("23.51M", 23_508_032.0)
    assert backbone["params_ok"] == "✓"
    main = table[(table["table"] == "ResNet ImageNet") & (table["model"] == "resnet50_v1")]
    assert main.iloc[0]["params"] == 25_557_032.0  # the full model elsewhere
    # every other efficiency row is listed once, with the reason it is not compared
    left = uncompared_published(table)
    printed = load_published()[list(EFFICIENCY_COLUMNS)].ne("").any(axis=1)
    assert len(table) + len(left) == int(printed.sum())
    weightnet = left[left["row"] == "+ WeightNet"].iloc[0]
    assert weightnet["why"].startswith("no model: Not built")
    speed = left[(left["table"] == "Inference speed") & (left["row"] == "+ DCD")].iloc[0]
    assert speed["why"] == TIMED_ELSEWHERE


def test_every_ablation_row_has_a_model_or_says_why_not():
    data = load_published()
    ablations = data[
        data["table"].isin(["Table 1(a)", "Table 1(b)", "Table 2", "Table 3(a)", "Table 3(b)"])
        | data["table"].str.startswith("Ablation")
        | (data["table"] == "ResNet ImageNet")
    ]
    for row in ablations.itertuples(index=False):
        assert row.model or row.note.startswith("Not built") or "Not built:" in row.note, row


def _timings(rows: list[tuple]) -> pd.DataFrame:
    """A store of the (model, metric, value, detail) tuples' records, in order."""
    return frame([record(m, k, v, "torch.utils.benchmark", d) for m, k, v, d in rows])


def test_published_speed_compares_slowdowns_not_absolute_speeds():
    rows = [
        ("mobilenetv2_100", "cpu_images_per_s", 30.0, None),
        ("mobilenetv2_100", "latency_ms", 33.3, None),
        ("mobilenetv2_100_dcd", "cpu_images_per_s", 20.0, None),
        ("mobilenetv2_100_dcd", "latency_ms", 48.0, None),
        ("mobilenetv2_100_dcd", "latency_ratio", 1.45, {"ci95_low": 1.43, "ci95_high": 1.47}),
        ("mobilenetv2_100_odconv_1x", "cpu_images_per_s", 22.0, None),
        ("mobilenetv2_100_odconv_1x", "latency_ratio", 1.36, {"ci95_low": 1.34, "ci95_high": 1.37}),
    ]
    measured = _timings(rows)
    table = compare_published_speed(measured).set_index(["source", "model"])
    # ODConv paper, E5-2683 v3: baseline 17.3 img/s, DCD 9.5 img/s -> 1.821x slower there
    dcd = table.loc[("003", "mobilenetv2_100_dcd")]
    assert dcd["printed_ratio"] == pytest.approx(17.3 / 9.5, abs=1e-3)
    assert dcd["measured_ratio"] == 1.45 and dcd["verdict"] == "cheaper here"
    # ODConv 1x printed 17.3 / 12.8 = 1.352, inside [1.34, 1.37]
    assert table.loc[("003", "mobilenetv2_100_odconv_1x"), "verdict"] == "as printed"
    # DCD paper, one EPYC 7551P core: 146 ms -> 163 ms, 1.116x; ours 1.45x
    dcd_ms = table.loc[("002", "mobilenetv2_100_dcd")]
    assert dcd_ms["printed"] == "163 ms"
    assert dcd_ms["printed_ratio"] == pytest.approx(1.116, abs=1e-3)
    assert dcd_ms["verdict"] == "costlier here"
    assert table.loc[("002", "mobilenetv2_100"), "verdict"] == "baseline"
    # a model timed without its baseline has nothing to be compared with
    alone = measured[measured["model"] == "mobilenetv2_100_dcd"]
    assert compare_published_speed(alone).empty
    # and a timed model does not produce an empty params/MAdds comparison
    assert compare_published(measured).empty


def test_published_training_time_ratio_against_the_train_step_suite():
    assert minutes("53 mins") == 53 and minutes("approximately 13 hours") == 780
    assert minutes("4-5 mins") is None  # a range: not compared
    rows = [
        ("resnet18_cifar", "train_step_ms_per_image", 10.0, None),
        ("resnet18_cifar_dyconv_4x", "train_step_ms_per_image", 30.0, None),
        (
            "resnet18_cifar_dyconv_4x",
            "train_step_ratio",
            3.0,
            {"ci95_low": 2.95, "ci95_high": 3.05},
        ),  # noqa: E501
    ]
    measured = _timings(rows)
    table = compare_published_speed(measured).set_index("model")
    dynamic = table.loc["resnet18_cifar_dyconv_4x"]
    # the reproduction: 53 min vs about 13 hours of training, 14.7x
    assert dynamic["printed"] == "approximately 13 hours"
    assert dynamic["printed_ratio"] == pytest.approx(780 / 53, abs=1e-3)
    assert dynamic["measured_ratio"] == 3.0 and dynamic["verdict"] == "cheaper here"


def test_published_speed_judges_the_newest_run_on_its_own_quality():
    """The rules of dynbench.report.quality hold here as in the scorecard: a GPU throughput
    whose blocks spread over 10% gives no verdict; a newest run that is quiet gives one
    (the scorecard weighs every run, this table shows the newest)."""
    gpu = [
        ("resnet50_v1", "gpu_images_per_s", 7500.0, {"spread": 0.01}, "a"),
        ("resnet50_v1_dcd", "gpu_images_per_s", 3750.0, {"spread": 0.01}, "a"),
        ("resnet50_v1_odconv_1x", "gpu_images_per_s", 3150.0, {"spread": 0.30}, "a"),
        ("resnet50_v1", "gpu_images_per_s", 7500.0, {"spread": 0.01}, "b"),
        ("resnet50_v1_dcd", "gpu_images_per_s", 4500.0, {"spread": 0.01}, "b"),
    ]
    cpu = [
        ("mobilenetv2_100", "cpu_images_per_s", 30.0, None, "a"),
        ("mobilenetv2_100_dcd", "cpu_images_per_s", 20.0, None, "a"),
        ("mobilenetv2_100_dcd", "latency_ratio", 1.50, {"ci95_low": 1.49, "ci95_high": 1.51}, "a"),
        ("mobilenetv2_100_dcd", "latency_ratio", 1.40, {"ci95_low": 1.39, "ci95_high": 1.41}, "b"),
    ]
    measured = frame([record(m, k, v, "x", d, run_id=r) for m, k, v, d, r in gpu + cpu])
    table = compare_published_speed(measured).set_index(["source", "model"])
    odconv = table.loc[("003", "resnet50_v1_odconv_1x")]
    assert odconv["printed"].endswith("img/s") and odconv["verdict"] == "inconclusive (noisy)"
    # DCD: 7500 / 4500 = 1.667x in the newer run, 2.0x in the older
    gpu_dcd = table[table["printed"] == "400 img/s"].loc[("003", "resnet50_v1_dcd")]
    assert gpu_dcd["measured_ratio"] == pytest.approx(1.667, abs=1e-3)
    assert gpu_dcd["verdict"] == "as printed"  # 1.667x against the printed 1.63x
    cpu_dcd = table.loc[("003", "mobilenetv2_100_dcd")]
    assert cpu_dcd["measured_ratio"] == 1.40 and cpu_dcd["verdict"] == "cheaper here"
