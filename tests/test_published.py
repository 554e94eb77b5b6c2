"""The published data loads, parses printed precision, and the comparison judges it."""

import pandas as pd
import pytest

from dynbench.published import load_published, parse_printed, published_models
from dynbench.report.compare import clean_label, compare_published, match


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
    measured = pd.DataFrame(
        [
            {"model": "resnet18", "metric": "params", "method": "count", "value": 11_689_512.0},
            {
                "model": "resnet18",
                "metric": "params_no_classifier",
                "method": "count",
                "value": 11_176_512.0,
            },
            {
                "model": "resnet18",
                "metric": "madds",
                "method": "conv_linear",
                "value": 1_814_073_344.0,
            },
            {"model": "resnet18", "metric": "madds", "method": "fvcore", "value": 1_819_065_856.0},
        ]
    ).assign(measured_at=range(4))
    table = compare_published(measured)
    odconv = table[(table["source"] == "003") & (table["table"] == "ResNet ImageNet")].iloc[0]
    assert odconv["params_ok"] == "✓" and odconv["madds_ok"] == "✓ conv_linear"
    assert odconv["fvcore_Δ%"] == pytest.approx(0.28, abs=0.01)
    dcd = table[(table["source"] == "002") & (table["row"] == "static")].iloc[0]
    assert dcd["params_ok"] == "≈ (no fc)"  # 11,176,512 without the fc vs the printed 11.1M
