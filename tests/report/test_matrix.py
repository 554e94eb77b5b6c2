"""The reproduction matrix's totals over every seed table."""

import pandas as pd
import pytest

from dynbench.report.matrix import SeedTable, overall_counts, reproduction_matrix
from tests.report.stores import frame, record


def _seed(counts: list[dict]) -> SeedTable:
    return SeedTable("t", pd.DataFrame(counts), pd.DataFrame())


def test_overall_counts_sum_the_tables_and_give_the_share_reproduced():
    first = _seed(
        [
            {"Figure": "params", "✓": 4, "≈": 0, "✗": 0},
            {"Figure": "MAdds (fvcore)", "✓": 0, "≈": 1, "✗": 3},
        ]
    )
    # a table without the fvcore row, its counter rows listed in another order
    second = _seed(
        [
            {"Figure": "params", "✓": 0, "≈": 2, "✗": 2},
            {"Figure": "MAdds (torch)", "✓": 1, "≈": 0, "✗": 0},
        ]
    )
    total = overall_counts([first, second]).set_index("Figure")
    assert list(total.index) == ["params", "MAdds (fvcore)", "MAdds (torch)"]
    assert total.loc["params", ["✓", "≈", "✗"]].tolist() == [4, 2, 2]
    assert total.loc["params", "Reproduced %"] == pytest.approx(75.0)  # (4 + 2) / 8
    assert total.loc["MAdds (fvcore)", "Reproduced %"] == pytest.approx(25.0)
    assert total.loc["MAdds (torch)", "Reproduced %"] == pytest.approx(100.0)


def test_overall_counts_of_no_table_is_empty():
    assert overall_counts([]).empty


def test_overall_params_count_of_the_resnet18_rows():
    """ResNet-18 has five printed params: the ODConv paper's 11.69M three times and the DCD
    paper's 11.1M twice, whose sections count in units of 2^20 (11.148): all ✓."""
    measured = frame(
        [
            record("resnet18", "params", 11_689_512.0, "count"),
            record("resnet18", "params_no_classifier", 11_176_512.0, "count"),
        ]
    )
    tables, _ = reproduction_matrix(measured)
    params = overall_counts(tables).set_index("Figure").loc["params"]
    assert params[["✓", "≈", "✗", "Reproduced %"]].tolist() == [5, 0, 0, 100.0]
    dcd = next(t for t in tables if "Table 4(b)" in t.title)
    assert dcd.title.endswith("Table 4(b) (params: 2^20 units, with the classifier, half-up)")


def test_a_counter_one_unit_off_counts_as_approximate_beside_an_exact_one():
    """ODConv's ResNet-18 baseline prints 1.814G: conv+FC is exact, 1.815G is one unit off."""
    measured = frame(
        [
            record("resnet18", "params", 11_689_512.0, "count"),
            record("resnet18", "madds", 1.814e9, "conv_linear"),
            record("resnet18", "madds", 1.815e9, "ptflops"),
            record("resnet18", "madds", 1.819e9, "fvcore"),
        ]
    )
    tables, _ = reproduction_matrix(measured)
    odconv = next(t for t in tables if "ResNet ImageNet (" in t.title)
    assert odconv.title.endswith("(params: 10^6 units, with the classifier, half-up)")
    counts = odconv.counts.set_index("Figure")
    assert counts.loc["MAdds (conv_linear)", ["✓", "≈", "✗"]].tolist() == [1, 0, 0]
    assert counts.loc["MAdds (ptflops)", ["✓", "≈", "✗"]].tolist() == [0, 1, 0]
    assert counts.loc["MAdds (fvcore)", ["✓", "≈", "✗"]].tolist() == [0, 0, 1]
    assert odconv.rows["MAdds reproduced by"].tolist() == ["✓ conv_linear"]
