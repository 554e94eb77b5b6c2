"""--operator: a user's conv built into the papers' backbones, measured as theirs are, and
every bad operator refused with one line before anything is stored."""

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from dynbench.models.registry import find_model
from dynbench.models.user_operator import load_operator, registered

EXAMPLE = Path(__file__).parents[2] / "examples" / "input_gain_conv.py"
OPERATOR = "input_gain_conv:InputGainConv2d"
# ResNet-18's block convs each gain a Linear(C_in, C_out): weights and biases
GAIN_WEIGHTS = 64 * 64 * 4 + 64 * 128 + 128 * 128 * 3 + 128 * 256 + 256 * 256 * 3
GAIN_WEIGHTS += 256 * 512 + 512 * 512 * 3
GAIN_BIASES = 64 * 4 + 128 * 4 + 256 * 4 + 512 * 4
# one multiply per output element of every block conv at 224x224
SCALED_OUTPUTS = 4 * (64 * 56 * 56 + 128 * 28 * 28 + 256 * 14 * 14 + 512 * 7 * 7)


@pytest.fixture
def example(tmp_path):
    shutil.copy(EXAMPLE, tmp_path)


def test_registered_for_the_block_and_unregistered_after(monkeypatch, tmp_path, example):
    monkeypatch.chdir(tmp_path)
    operator = load_operator(OPERATOR, "gain")
    with registered(operator) as names:
        assert names == ["resnet18_gain", "resnet50_gain", "mobilenetv2_100_gain"]
        info = find_model("resnet18_gain")
        assert (info.family, info.operator, info.source) == ("resnet18", "gain", OPERATOR)
    assert find_model("resnet18_gain") is None


def test_params_and_analytic_madds(cli, tmp_path, example):
    result = cli(
        "run", "--suite", "madds", "--operator", OPERATOR, "--operator-name", "gain",
        "--models", "resnet18,resnet18_gain", "--counters", "conv_linear,analytic,fvcore",
        "--json", "m.json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "m.json").read_text())
    madds = {(r["model"], r["method"]): r["value"] for r in records if r["metric"] == "madds"}
    conv_fc = madds["resnet18_gain", "conv_linear"] - madds["resnet18", "conv_linear"]
    assert conv_fc == GAIN_WEIGHTS
    analytic = madds["resnet18_gain", "analytic"] - madds["resnet18", "analytic"]
    assert analytic == GAIN_WEIGHTS + SCALED_OUTPUTS
    # weight bytes: every parameter of the operator is read; its static counterpart the conv
    (weights,) = [
        r
        for r in records
        if r["model"] == "resnet18_gain" and r["metric"] == "weight_bytes_per_image"
    ]
    assert weights["value"] == 4 * (11_689_512 + GAIN_WEIGHTS + GAIN_BIASES)
    assert weights["detail"]["static_equivalent_bytes"] == 4 * 11_689_512
    (mine,) = [r for r in records if r["model"] == "resnet18_gain" and r["method"] == "fvcore"]
    assert mine["settings"]["user_operator"] == "blocks"
    assert mine["settings"]["source"] == OPERATOR
    result = cli(
        "run", "--suite", "params", "--operator", OPERATOR, "--operator-name", "gain",
        "--models", "resnet18_gain", "--json", "p.json",
    )  # fmt: skip
    params = {r["metric"]: r["value"] for r in json.loads((tmp_path / "p.json").read_text())}
    assert params["params"] == 11_689_512 + GAIN_WEIGHTS + GAIN_BIASES


def test_without_analytic_madds_the_count_says_so(cli, tmp_path):
    (tmp_path / "plainop.py").write_text(
        textwrap.dedent("""
        from torch import nn
        class Doubled(nn.Conv2d):
            def forward(self, x):
                return 2 * super().forward(x)
    """)
    )
    result = cli(
        "run", "--suite", "madds", "--operator", "plainop:Doubled", "--models",
        "resnet18_doubled", "--input-size", "3,64,64", "--json", "d.json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    records = [r for r in json.loads((tmp_path / "d.json").read_text()) if r["metric"] == "madds"]
    by_counter = {r["method"]: r for r in records}
    assert by_counter["analytic"]["value"] is None
    assert by_counter["analytic"]["detail"]["error"].startswith(
        "AnalyticUnavailable: analytic count unavailable: Doubled (at layer1.0.conv1)"
    )
    assert all(by_counter[c]["value"] > 0 for c in ("fvcore", "ptflops", "torch", "conv_linear"))


BAD_OPERATORS = """
import torch
from torch import nn
class NotAModule:
    def __init__(self, *args, **kwargs):
        pass
class OnlyChannels(nn.Module):
    def __init__(self, channels):
        super().__init__()
class IgnoresStride(nn.Conv2d):
    def __init__(self, cin, cout, k, stride=1, padding=0, groups=1, bias=False):
        super().__init__(cin, cout, k, 1, padding, groups=groups, bias=bias)
"""


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "NotAModule",
            "resnet18 layer1.0.conv1 (64->64 3x3 stride 1): <class 'badops.NotAModule'> is "
            "not a torch.nn.Module subclass; expected a drop-in nn.Conv2d-compatible layer",
        ),
        (
            "OnlyChannels",
            "OnlyChannels at resnet18 layer1.0.conv1 (64->64 3x3 stride 1): constructor refused "
            "the conv's arguments (TypeError:",
        ),
        (
            "IgnoresStride",
            "IgnoresStride at resnet18 layer2.0.conv1 (64->128 3x3 stride 2): output (1, 128, "
            "56, 56) on input (1, 64, 56, 56); expected (1, 128, 28, 28) like the conv it replaces",
        ),
    ],
)
def test_bad_operator_is_one_line_and_stores_nothing(cli, tmp_path, name, message):
    (tmp_path / "badops.py").write_text(BAD_OPERATORS)
    result = cli("run", "--suite", "params", "--operator", f"badops:{name}", "--db", "b.sqlite")
    assert result.code == 2
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b.sqlite").exists()
    assert find_model(f"resnet18_{name.lower()}") is None


def test_guard_takes_the_operator(cli, tmp_path, example):
    args = ("guard", *("--operator", OPERATOR, "--operator-name", "gain"), "--baseline", "g.json")
    result = cli(*args, "--models", "resnet18_gain", "--update")
    assert result.code == 0, result.stderr
    stored = json.loads((tmp_path / "g.json").read_text())["models"]
    assert stored["resnet18_gain"]["params"] == 11_689_512 + GAIN_WEIGHTS + GAIN_BIASES
    result = cli(*args, "--models", "resnet18_gain")
    assert result.code == 0 and "guard passed: 1 models checked" in result.stderr
