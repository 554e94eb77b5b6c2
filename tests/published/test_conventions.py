"""Params conventions: one per table section, fixed by its baseline row, never per row."""

import pandas as pd
import pytest

from dynbench.measure.params import count_params
from dynbench.models.registry import create_model
from dynbench.published import load_published, parse_printed
from dynbench.published.conventions import (
    Convention,
    calibrate,
    load_conventions,
    load_madds_conventions,
    madds_conventions_of,
    reproduces,
    sections_of,
)
from dynbench.report.matrix import reproduction_matrix
from dynbench.report.published_sizes import compare_published, fragile
from tests.report.stores import frame as stored
from tests.report.stores import record


def _published(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """A constructed one-section table: (row label, model, printed params)."""
    frame = pd.DataFrame(
        [
            {
                "source": "999_constructed.txt",
                "table": "T",
                "backbone": "Net",
                "row_label": label,
                "model": model,
                "params": params,
                "madds": "",
                "note": "",
            }
            for label, model, params in rows
        ]
    )
    parsed = frame["params"].map(parse_printed)
    frame["params_value"] = [p[0] for p in parsed]
    frame["params_step"] = [p[1] for p in parsed]
    frame["madds_value"] = None
    frame["madds_step"] = None
    return frame


def _measured(counts: dict[str, int]) -> pd.DataFrame:
    rows = [
        {"model": model, "metric": metric, "method": "count", "value": float(value)}
        for model, total in counts.items()
        for metric, value in (("params", total), ("params_no_classifier", total - 1000))
    ]
    return pd.DataFrame(rows).assign(measured_at=range(len(rows)))


def _conventions(unit: str) -> dict:
    row = {"source": "999", "table": "T", "backbone": "Net", "baseline_model": "base"}
    row.update(unit=unit, classifier="in", rounding="half-up", why="constructed")
    return sections_of(pd.DataFrame([row]))


# The baseline prints 1.00M: exact in 10^6 (1,000,000), not in 2^20 (0.95).
# The dynamic row prints 2.00M: 2,097,152 is 2.10 in 10^6 but exactly 2.00 in 2^20.
TABLE = [("static", "base", "1.00M"), ("dynamic", "dyn", "2.00M")]
COUNTS = {"base": 1_000_000, "dyn": 2_097_152}


def test_a_convention_that_fits_only_a_non_baseline_row_is_never_applied():
    compared = compare_published(
        _measured(COUNTS), _published(TABLE), _conventions("10^6")
    ).set_index("model")
    assert compared.loc["base", "params_ok"] == "✓"
    status = compared.loc["dyn", "params_ok"]
    assert status.startswith("✗ (✓ under another convention: 2.000M in 2^20 units")
    assert compared.loc["dyn", "params_Δ%"] == pytest.approx(4.86)  # 2.097152 vs 2.00


def test_a_declared_convention_that_misses_the_measured_baseline_is_not_applied():
    compared = compare_published(
        _measured(COUNTS), _published(TABLE), _conventions("2^20")
    ).set_index("model")
    assert compared.loc["dyn", "params_ok"].startswith("✗")
    assert "does not reproduce the measured baseline (base)" in compared.loc["dyn", "convention"]


def test_calibration_picks_the_fewest_departures_from_the_default():
    # ResNet-18's 11.1M fits 2^20 with the classifier (one departure) and also 10^6
    # without the classifier, truncated (two): the first is the section's convention
    counts = {"params": 11_689_512, "params_no_classifier": 11_176_512}
    assert calibrate(counts, 11.1e6, 0.1e6) == Convention("2^20", "in", "half-up")
    assert reproduces(Convention("10^6", "out", "truncate"), counts, 11.1e6, 0.1e6)
    assert calibrate({"params": 1_968_680, "params_no_classifier": 687_680}, 2.0e6, 0.01e6) is None


def test_every_declared_convention_is_the_one_its_baseline_calibrates():
    """The declarations in conventions.csv against the baselines' exact counts."""
    published = load_published()
    sections = load_conventions()
    counts = {
        name: count_params(create_model(name))
        for name in {s.baseline_model for s in sections.values()}
    }
    for key, section in sections.items():
        base = published[
            (published["source"].str[:3] == key[0])
            & (published["table"] == key[1])
            & (published["backbone"] == key[2])
            & (published["model"] == section.baseline_model)
        ].iloc[0]
        found = calibrate(counts[section.baseline_model], base.params_value, base.params_step)
        assert found == section.convention, key


def test_every_params_row_with_a_model_belongs_to_a_declared_section():
    sections = load_conventions()
    published = load_published()
    rows = published[(published["model"] != "") & (published["params"] != "")]
    keys = set(zip(rows["source"].str[:3], rows["table"], rows["backbone"], strict=True))
    assert keys == set(sections)


def test_fragile_flags_a_match_within_a_hair_of_its_rounding_edge():
    assert fragile(2_651_100, 2.7e6, 0.1e6)  # 0.04% above 2.65M
    assert not fragile(2_700_000, 2.7e6, 0.1e6)
    # a four-digit figure's half-step is under 0.1%: only a tenth of the step counts
    assert not fragile(1_814_073_344, 1.814e9, 0.001e9)
    assert fragile(3_504_872, 3.50e6, 0.01e6)  # 128 params from printing 3.51M


def test_a_paper_convention_counts_its_parts_on_every_row_of_the_paper():
    """ODConv's ResNet-18 1x prints 1.838G; paper:odconv counts conv + attention +
    aggregation (the kernel products), not the feature-map scaling."""
    breakdown = {
        "conv": 1_814_073_344,
        "attention": 246_448,
        "aggregation": 10_985_472,
        "feature_scale": 3_186_176,
    }
    total = float(sum(breakdown.values()))
    measured = stored(
        [
            record("resnet18_odconv_1x", "params", 1.0, "count"),
            record("resnet18_odconv_1x", "madds", total, "analytic", {"breakdown": breakdown}),
        ]
    )
    compared = compare_published(measured)
    main = compared[compared["table"] == "ResNet ImageNet"].iloc[0]
    assert main["paper_convention"] == "paper:odconv"
    assert main["paper_madds"] == 1_814_073_344 + 246_448 + 10_985_472  # 1.8253G
    assert main["paper_ok"] == "✗" and main["paper_Δ%"] == pytest.approx(-0.69)
    assert main["analytic_ok"] == "✗"  # 1.8285G with the feature-map scaling
    tables, _ = reproduction_matrix(measured)
    odconv = next(t for t in tables if "ResNet ImageNet (" in t.title)
    counts = odconv.counts.set_index("Figure")
    assert counts.loc["MAdds (paper:odconv)", ["✓", "≈", "✗"]].tolist() == [0, 0, 1]
    assert odconv.rows["MAdds reproduced by"].tolist() == ["✗; paper:odconv ✗ (-0.69%)"]
    assert odconv.footnotes[-1].startswith("MAdds paper:odconv counts conv + attention + ")


def test_madds_conventions_name_known_parts_only():
    frame = pd.DataFrame(
        [{"name": "paper:x", "source": "999", "parts": "conv+flops", "why": "", "tried": ""}]
    )
    with pytest.raises(ValueError, match="unknown MAdds parts"):
        madds_conventions_of(frame)
    conventions = load_madds_conventions()
    assert {c.name for c in conventions.values()} == {"paper:dcd", "paper:odconv"}
    assert conventions["003"].total({"conv": 10, "attention": 1, "aggregation": 2}) == 13
    assert conventions["003"].total({"conv": 10}) is None  # a part not measured


def test_paper_dcd_counts_each_layers_cheaper_route():
    """DCD's pointwise MobileNetV2 x0.5 prints 104.6M: conv 97.13M + branch 0.76M + the
    residual and Lambda on their cheaper routes (6.42M, 0.22M) is 104.535M, one unit off;
    on the feature maps (the analytic counter) 134.08M."""
    breakdown = {
        "conv": 97_131_840,
        "attention": 764_160,
        "aggregation": 34_150_256,
        "feature_scale": 2_031_344,
    }
    detail = {
        "breakdown": breakdown,
        "cheaper_route": {"aggregation": 6_418_288, "feature_scale": 220_720},
    }
    model = "mobilenetv2_050_dcd_pw"
    rows = [
        record(model, "params", 2_876_776.0, "count"),
        record(model, "madds", float(sum(breakdown.values())), "analytic", detail),
    ]
    compared = compare_published(stored(rows))
    row = compared[compared["table"] == "Table 1(a)"].iloc[0]
    assert (row["paper_convention"], row["paper_madds"]) == ("paper:dcd", 104_535_008)
    assert row["paper_ok"] == "≈" and row["analytic_ok"] == "✗"
