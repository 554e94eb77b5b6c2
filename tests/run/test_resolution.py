"""The resolution suite, and quoted figures set beside the counts at their sizes."""

import json

from dynbench.report.resolution import resolution_table
from tests.report.stores import frame, record


def test_resolution_suite_counts_every_size(cli, tmp_path):
    (tmp_path / "res.toml").write_text(
        'measures = ["resolution"]\nmodels = ["resnet10"]\n[settings]\n'
        'input_sizes = [[3, 32, 32], [3, 64, 32]]\ncounters = ["conv_linear", "torch"]\n'
    )
    assert cli("run", "--suite", "res.toml", "--json", "r.json").code == 0
    records = json.loads((tmp_path / "r.json").read_text())
    counted = {(tuple(r["settings"]["input_size"]), r["method"]): r["value"] for r in records}
    assert set(counted) == {
        (s, c) for s in ((3, 32, 32), (3, 64, 32)) for c in ("conv_linear", "torch")
    }
    # a CNN's conv MAdds scale with the input area, the classifier's do not
    small, large = counted[((3, 32, 32), "conv_linear")], counted[((3, 64, 32), "conv_linear")]
    assert large - 512 * 1000 == 2 * (small - 512 * 1000)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'measures = ["resolution"]\nmodels = ["resnet10"]\n[settings]\ninput_sizes = [[3, 0, 32]]\n'
    )
    assert cli("run", "--suite", str(bad)).code == 2


def test_quoted_figures_beside_the_counts():
    size = {"input_size": [3, 250, 450], "batch": 1}
    store = frame([
        record("resnet50", "resolution_madds", 9.604e9, "ptflops", settings=size),
        record("resnet50_dynconv", "resolution_madds", 9.721e9, "ptflops", settings=size),
    ])  # fmt: skip
    table = resolution_table(store)
    row = table[table["Quoted row (004)"].str.contains("250, 450")].iloc[0]
    assert row["Quoted"] == "9.7G" and row["resnet50 (ptflops)"] == "9.604G"
    assert row["Reproduced by"] == "resnet50 ptflops ≈, resnet50_dynconv ptflops ✓"
    assert len(table) == 1  # only the sizes that were counted
