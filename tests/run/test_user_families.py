"""User models in families: --baseline and a suite's [[families]] time them interleaved
with a baseline and give each a ratio with its interval; without one the row says why."""

import json
import textwrap

import pytest

TINY_LATENCY = """
description = "a few rounds of latency at 32x32"
measures = ["latency"]
models = ["resnet18"]
{families}
[settings]
rounds = 6
max_rounds = 6
min_run_time = 0.01
block_time = 0.001
warmup = 1
input_size = [3, 32, 32]
"""


@pytest.fixture
def user_models(tmp_path):
    (tmp_path / "famnets.py").write_text(
        textwrap.dedent("""
        from torch import nn
        def plain():
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        def wider():
            return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU())
    """)
    )
    (tmp_path / "tiny.toml").write_text(TINY_LATENCY.format(families=""))


def ratios(path) -> dict[str, dict]:
    records = json.loads(path.read_text())
    return {r["model"]: r for r in records if r["metric"] == "latency_ratio"}


def test_baseline_module_factory_joins_the_user_models(cli, tmp_path, user_models):
    result = cli(
        "run", "--suite", "tiny.toml", "--model", "famnets:wider", "--model", "famnets:plain",
        "--baseline", "famnets:plain", "--json", "b.json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    found = ratios(tmp_path / "b.json")
    assert set(found) == {"famnets:wider"}  # the baseline is timed once, as the baseline
    detail = found["famnets:wider"]["detail"]
    assert detail["baseline"] == "famnets:plain" and detail["rounds"] == 6
    assert detail["ci95_low"] <= found["famnets:wider"]["value"] <= detail["ci95_high"]
    settings = found["famnets:wider"]["settings"]
    assert (settings["family"], settings["operator"]) == ("famnets:plain", "user")
    assert "no ratio" not in result.stdout


def test_baseline_registry_name(cli, tmp_path, user_models):
    result = cli(
        "run", "--suite", "tiny.toml", "--model", "famnets:wider", "--baseline", "resnet18",
        "--json", "r.json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    found = ratios(tmp_path / "r.json")
    assert set(found) == {"famnets:wider"}
    assert found["famnets:wider"]["detail"]["baseline"] == "resnet18"
    assert found["famnets:wider"]["value"] < 1  # one conv against a ResNet-18


def test_without_baseline_the_row_says_why(cli, tmp_path, user_models):
    result = cli("run", "--suite", "tiny.toml", "--model", "famnets:wider", "--json", "n.json")
    assert result.code == 0, result.stderr
    assert ratios(tmp_path / "n.json") == {}
    assert "no ratio: a user model without a baseline (give --baseline)" in result.stdout


def test_suite_declares_a_family(cli, tmp_path, user_models):
    family = '[[families]]\nbaseline = "famnets:plain"\nmodels = ["famnets:wider", "resnet10"]\n'
    (tmp_path / "fam.toml").write_text(
        TINY_LATENCY.format(families=family).replace('models = ["resnet18"]\n', "")
    )
    result = cli("run", "--suite", "fam.toml", "--json", "f.json")
    assert result.code == 0, result.stderr
    found = ratios(tmp_path / "f.json")
    assert set(found) == {"famnets:wider", "resnet10"}
    assert {r["detail"]["baseline"] for r in found.values()} == {"famnets:plain"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--baseline", "resnet18"), "--baseline 'resnet18' joins the user models of the run"),
        (("--model", "famnets:wider", "--baseline", "famnets:nothing"), "no callable 'nothing'"),
        (("--model", "famnets:wider", "--baseline", "resnet19"), "unknown model 'resnet19'"),
    ],
)
def test_bad_baseline_is_one_line(cli, tmp_path, user_models, args, message):
    result = cli("run", "--suite", "tiny.toml", "--db", "x.sqlite", *args)
    assert result.code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.sqlite").exists()


def test_bad_families_table(cli, tmp_path, user_models):
    (tmp_path / "bad.toml").write_text(
        TINY_LATENCY.format(families='[[families]]\nbaseline = "resnet18"\n')
    )
    result = cli("run", "--suite", "bad.toml")
    assert result.code == 2
    assert "[[families]] must be tables with baseline" in result.stderr
