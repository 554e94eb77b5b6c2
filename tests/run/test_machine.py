"""The machine suite: no models, its measure runs once, its ceilings are stored."""

import json
import textwrap

import pytest

from dynbench.errors import DynbenchError
from dynbench.measure.environment import all_cores
from dynbench.run.suite import load_suite, parse_suite


def test_the_shipped_machine_suite_needs_no_models():
    suite = load_suite("machine")
    assert suite.measures == ["machine"] and suite.models == []


def test_a_suite_with_a_model_measure_still_needs_models():
    with pytest.raises(DynbenchError, match="lacks the required key 'models'"):
        parse_suite("x", 'measures = ["machine", "roofline"]')


def test_a_bad_machine_setting_is_refused():
    with pytest.raises(DynbenchError, match="gemm_size = 0 is not a positive integer"):
        parse_suite("x", 'measures = ["machine"]\n[settings]\ngemm_size = 0')


def test_machine_suite_stores_both_ceilings_once_per_scope(cli, tmp_path):
    (tmp_path / "tiny.toml").write_text(
        textwrap.dedent("""
        description = "tiny ceilings"
        measures = ["machine"]
        [settings]
        read_mib = 1
        gemm_size = 32
        min_run_time = 0.02
    """)
    )
    result = cli("run", "--suite", "tiny.toml", "--db", "m.sqlite", "--json", "m.json")
    assert result.code == 0, result.stderr
    records = json.loads((tmp_path / "m.json").read_text())
    scopes = ["1 thread"] + (["all cores"] if all_cores() > 1 else [])
    found = sorted((r["metric"], r["method"]) for r in records)
    assert found == sorted((m, s) for m in ("read_bandwidth", "gemm_rate") for s in scopes)
    for r in records:
        assert r["model"] == "(machine)" and r["value"] > 0
        assert r["unit"] == {"read_bandwidth": "GB/s", "gemm_rate": "GMAdds/s"}[r["metric"]]
    read = next(r for r in records if r["metric"] == "read_bandwidth")
    assert read["detail"]["read_bytes"] == 2**20 and read["settings"]["threads"] == 1
