"""The README's worked example end to end: the example operator through params, MAdds and a
short latency run from the command line, then the report's section setting it beside the
papers' operators."""

import json
import re
import shutil
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "input_gain_conv.py"
OPERATOR = ("--operator", "input_gain_conv:InputGainConv2d", "--operator-name", "gain")
MODELS = ("--models", "resnet18,resnet18_gain,resnet18_odconv_1x")
SHORT_LATENCY = """
description = "a few rounds of latency at 32x32 (the example's test)"
measures = ["latency"]
models = ["resnet18", "resnet18_odconv_1x"]
[settings]
rounds = 6
max_rounds = 6
min_run_time = 0.01
block_time = 0.001
warmup = 1
input_size = [3, 32, 32]
"""


def test_example_operator_params_madds_latency_report(cli, tmp_path):
    shutil.copy(EXAMPLE, tmp_path)
    (tmp_path / "short.toml").write_text(SHORT_LATENCY)
    for suite, models in (("params", MODELS), ("madds", ("--models", "resnet18,resnet18_gain"))):
        result = cli("run", "--suite", suite, *OPERATOR, *models, "--json", f"{suite}.json")
        assert result.code == 0, result.stderr
    # the suite's models and the operator on the suite's backbone, interleaved in one family
    result = cli("run", "--suite", "short.toml", *OPERATOR, "--json", "latency.json")
    assert result.code == 0, result.stderr
    params = json.loads((tmp_path / "params.json").read_text())
    assert {r["model"]: r["value"] for r in params if r["metric"] == "params"} == {
        "resnet18": 11_689_512,
        "resnet18_gain": 12_913_960,
        "resnet18_odconv_1x": 11_943_944,
    }
    madds = json.loads((tmp_path / "madds.json").read_text())
    gain = {
        r["method"]: r["value"]
        for r in madds
        if r["model"] == "resnet18_gain" and r["metric"] == "madds"
    }
    assert gain["analytic"] == 1_816_799_232 and gain["conv_linear"] == 1_815_293_952
    latency = json.loads((tmp_path / "latency.json").read_text())
    (ratio,) = [r for r in latency if r["metric"] == "latency_ratio" and "gain" in r["model"]]
    assert ratio["detail"]["baseline"] == "resnet18" and ratio["detail"]["rounds"] == 6
    assert ratio["detail"]["ci95_low"] <= ratio["value"] <= ratio["detail"]["ci95_high"]
    result = cli("report", "--out", "report")
    assert result.code == 0, result.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    section = text[text.index("## Your operator beside the papers' operators") :]
    assert re.search(r"\| resnet18_gain +\| yours +\| 12,913,960 \|", section)
    assert re.search(r"\| resnet18_odconv_1x +\| odconv +\| 11,943,944 \|", section)
    low, high = ratio["detail"]["ci95_low"], ratio["detail"]["ci95_high"]
    assert f"[{low:.3f}, {high:.3f}]" in section
    assert "resnet18_gain: " in section  # its place on the plot, or why it has none
    csv = (tmp_path / "report" / "user-operator-resnet18.csv").read_text()
    assert "resnet18_gain" in csv
