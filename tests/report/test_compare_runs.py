"""``dynbench compare``: two runs' ratios side by side, exit 1 when they disagree."""

import json

from tests.report.stores import record


def _ratio(model: str, value: float, low: float | None = None, high: float | None = None) -> dict:
    """A ratio as ``dynbench run --json`` writes it: the record's dict and its run."""
    detail = {"baseline": "resnet18", "ci95_low": low, "ci95_high": high}
    made = record(model, "latency_ratio", value, "torch.utils.benchmark", detail).record
    return {**made.as_dict(), "suite": "latency", "run_id": "x"}


def _write(tmp_path, name: str, records: list[dict]) -> str:
    (tmp_path / name).write_text(json.dumps(records))
    return name


def test_runs_within_tolerance_agree(cli, tmp_path):
    a = _write(tmp_path, "a.json", [_ratio("m1", 1.40, 1.38, 1.42), _ratio("m2", 1.10)])
    b = _write(tmp_path, "b.json", [_ratio("m1", 1.428), _ratio("m2", 1.09)])
    result = cli("compare", a, b, "--markdown", "agree.md")
    assert result.code == 0, result.stderr
    assert "largest difference 2.00%" in result.stderr  # 1.428 / 1.40 - 1
    table = (tmp_path / "agree.md").read_text()
    assert "[1.380, 1.420]" in table and "| yes" in table and "NO" not in table
    assert table.startswith("# a.json vs b.json") and "**runs agree" in table


def test_a_ratio_beyond_tolerance_fails(cli, tmp_path):
    a = _write(tmp_path, "a.json", [_ratio("m1", 1.40), _ratio("m2", 1.10)])
    b = _write(tmp_path, "b.json", [_ratio("m1", 1.45), _ratio("m2", 1.10)])
    result = cli("compare", a, b)
    assert result.code == 1
    assert "largest difference 3.57% > 3%" in result.stderr
    assert cli("compare", a, b, "--tolerance", "4").code == 0


def test_runs_from_the_store_and_bad_input(cli, tmp_path):
    (tmp_path / "quick.toml").write_text(
        'measures = ["latency"]\nmodels = ["resnet10_dyconv_4x"]\n'
        "[settings]\ninput_size = [3, 16, 16]\nrounds = 6\nmax_rounds = 6\nmin_run_time = 0.01\n"
    )
    assert cli("run", "--suite", "quick.toml", "--json", "q.json").code == 0
    run_id = json.loads((tmp_path / "q.json").read_text())[0]["run_id"]
    result = cli("compare", run_id, "q.json", "--tolerance", "0")
    assert result.code == 0 and "resnet10_dyconv_4x" in result.stdout  # a run equals itself
    params = _write(tmp_path, "p.json", [{**_ratio("m1", 1.0), "unit": "params"}])
    result = cli("compare", params, "q.json")
    assert result.code == 2 and "share no ratio measurement" in result.stderr
    (tmp_path / "junk.json").write_text("{not json")
    result = cli("compare", "junk.json", "q.json")
    assert result.code == 2 and "not a dynbench --json file" in result.stderr
    result = cli("compare", "no-such-run", "q.json")
    assert result.code == 2 and "neither a file nor a run id" in result.stderr
