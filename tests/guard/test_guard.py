"""The regression guard trips on every kind of size change and never on unchanged code."""

import json
import sys
import textwrap

import pytest

from dynbench.guard.check import compare

MODEL_TEMPLATE = textwrap.dedent("""
    from torch import nn
    from dynbench.ops.odconv import ODConv2d

    def build():
        return nn.Sequential(
            nn.Conv2d(3, {width}, 3, padding=1, bias=False),
            {dynamic},
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            {classifier},
        )
""")
ORIGINAL = {
    "width": 16,
    "dynamic": "ODConv2d({width}, {width}, 3, 1, 1, num_kernels=4)",
    "classifier": "nn.Linear({width}, 10)",
}
MUTATIONS = {
    "layer widened": {"width": 24},
    "kernel number changed": {"dynamic": "ODConv2d({width}, {width}, 3, 1, 1, num_kernels=2)"},
    "classifier swapped": {
        "classifier": "nn.Sequential(nn.Linear({width}, 32), nn.ReLU(), nn.Linear(32, 10))"
    },
    "dynamic conv made static": {"dynamic": "nn.Conv2d({width}, {width}, 3, 1, 1, bias=False)"},
}


def write_model(path, **changes):
    spec = {**ORIGINAL, **changes}
    width = spec["width"]
    source = MODEL_TEMPLATE.format(
        width=width,
        dynamic=spec["dynamic"].format(width=width),
        classifier=spec["classifier"].format(width=width),
    )
    path.write_text(source)


@pytest.fixture
def user_model(tmp_path, monkeypatch):
    """Writes usernet.py; forgets any earlier import so each guard sees the new file."""

    def write(**changes):
        monkeypatch.delitem(sys.modules, "usernet", raising=False)
        write_model(tmp_path / "usernet.py", **changes)

    return write


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_mutation_trips_the_guard(cli, user_model, tmp_path, mutation):
    user_model()
    args = [
        "guard",
        "--baseline",
        "base.json",
        "--model",
        "usernet:build",
        "--input-size",
        "3,32,32",
    ]
    assert cli(*args[:5], "--update").code == 0
    user_model(**MUTATIONS[mutation])
    result = cli(*args, "--json", "g.json", "--markdown", "g.md")
    assert result.code == 1, f"{mutation}: {result.stdout}{result.stderr}"
    assert "usernet:build" in result.stdout
    report = json.loads((tmp_path / "g.json").read_text())
    assert report["passed"] is False
    assert {d["model"] for d in report["drifted"]} == {"usernet:build"}
    assert "size regression" in (tmp_path / "g.md").read_text()


def test_unchanged_code_never_trips(cli, tmp_path):
    pattern = "resnet10,resnet10_*,mobilenetv2_035*"
    assert cli("guard", "--update", "--models", pattern).code == 0
    baseline = (tmp_path / "dynbench-baseline.json").read_text()
    for _ in range(3):
        result = cli("guard", "--models", pattern, "--markdown", "s.md")
        assert result.code == 0, result.stdout + result.stderr
    assert "match the baseline" in (tmp_path / "s.md").read_text()
    data = json.loads(baseline)
    assert data["models"]["resnet10"]["params"] == 5_418_792
    assert data["models"]["resnet10"]["madds"] == 889_229_312
    # diff-friendly: one model per line
    assert sum(line.strip().startswith('"resnet10') for line in baseline.splitlines()) == len(
        [m for m in data["models"] if m.startswith("resnet10")]
    )


def test_new_models_fail_unless_allowed(cli, tmp_path):
    assert cli("guard", "--update", "--models", "resnet10").code == 0
    data = json.loads((tmp_path / "dynbench-baseline.json").read_text())
    data["models"]["resnet_gone"] = data["models"]["resnet10"]
    (tmp_path / "dynbench-baseline.json").write_text(json.dumps(data))
    # a selection does not report resnet_gone as removed: only resnet18 is new
    assert cli("guard", "--models", "resnet10,resnet18").code == 1
    assert cli("guard", "--models", "resnet10,resnet18", "--allow-new").code == 0


SIZES = {"params": 10, "params_no_classifier": 8, "madds": 100}


def test_a_model_missing_from_the_whole_registry_is_removed_and_fails_unless_allowed():
    """Removals are judged on the whole registry (a selection leaves models out on purpose)."""
    baseline = {"kept": SIZES, "gone": SIZES}
    whole = compare(baseline, {"kept": SIZES}, tolerance_pct=0.0, selected_only=False)
    assert (whole.removed, whole.added, whole.drifted.empty) == (["gone"], [], True)
    assert whole.failed(allow_new=False, allow_removed=False)
    assert not whole.failed(allow_new=False, allow_removed=True)
    selection = compare(baseline, {"kept": SIZES}, tolerance_pct=0.0, selected_only=True)
    assert selection.removed == [] and not selection.failed(False, False)


def test_tolerance(cli, user_model):
    user_model()
    args = ["guard", "--baseline", "b.json", "--model", "usernet:build", "--input-size", "3,32,32"]
    assert cli(*args, "--update").code == 0
    user_model(dynamic="ODConv2d({width}, {width}, 3, 1, 1, num_kernels=2)")
    assert cli(*args).code == 1
    assert cli(*args, "--tolerance", "100").code == 0


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (None, ["guard"], "does not exist"),
        ("{not json", ["guard"], "not valid JSON"),
        ('{"models": 3}', ["guard"], "no 'models' object"),
        ('{"models": {"resnet10": {"params": 1}}}', ["guard"], "lacks integer"),
        ("", ["guard", "--update", "--models", "resnet19"], "matches no registered model"),
        ("", ["guard", "--update", "--tolerance", "-1"], "negative"),
    ],
)
def test_bad_input_exits_2(cli, tmp_path, setup, args, message):
    if setup:
        (tmp_path / "dynbench-baseline.json").write_text(setup)
    result = cli(*args)
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
