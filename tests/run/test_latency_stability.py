"""Two runs of the latency suite on one machine give ratios within 3% of each other.

Slow (two runs of the latency suite's rounds; reports/latency/ holds such a pair, on two
families, and reports/README.md how long it took): run with ``bash scripts/test.sh -m
slow``. It uses the latency suite's own defaults (turn-by-turn rounds until every ratio's
95% CI is within ±1%), on the ResNet-18 family: the static baseline and four dynamic
variants.
"""

import json

import pytest

pytestmark = pytest.mark.slow

SUITE = """
measures = ["latency"]
models = [
    "resnet18", "resnet18_dyconv_4x", "resnet18_odconv_4x", "resnet18_condconv_8x",
    "resnet18_dcd",
]
"""


def test_two_latency_runs_agree_within_3_percent(cli, tmp_path):
    (tmp_path / "stability.toml").write_text(SUITE)
    ratios = []
    for run in ("a", "b"):
        result = cli("run", "--suite", "stability.toml", "--json", f"{run}.json")
        assert result.code == 0, result.stderr
        records = json.loads((tmp_path / f"{run}.json").read_text())
        ratios.append({r["model"]: r["value"] for r in records if r["metric"] == "latency_ratio"})
    assert len(ratios[0]) == 4
    for model, first in ratios[0].items():
        second = ratios[1][model]
        assert abs(second - first) / first < 0.03, f"{model}: {first:.3f} vs {second:.3f}"
