"""--shard i/N: deterministic, disjoint, complete, and families kept whole for timing."""

import json

import pytest

from dynbench.errors import DynbenchError
from dynbench.models import list_models
from dynbench.run.family import families, resolve_targets
from dynbench.run.shard import parse_shard, take_shard
from dynbench.run.suite import load_suite


@pytest.mark.parametrize("text", ["8/8", "-1/8", "1/0", "a/b", "3", "1/2/3"])
def test_bad_shards_are_refused(text):
    with pytest.raises(DynbenchError, match="is not i/N with 0 <= i < N"):
        parse_shard(text)


def test_shards_split_a_timing_suite_by_family():
    suite = load_suite("latency")
    groups = families(resolve_targets(None, None, suite.models))
    names = [g[0].info.name for g in groups]
    shards = [take_shard(groups, names, i, 3) for i in range(3)]
    models = [[t.info.name for g in shard for t in g] for shard in shards]
    assert sorted(m for shard in models for m in shard) == sorted(
        t.info.name for g in groups for t in g
    )
    for shard in shards:  # every variant sits with its baseline
        for group in shard:
            assert {t.info.family for t in group} == {group[0].info.name}
    assert [g[0].info.name for g in shards[0]] == ["mobilenetv2_100"]
    assert [g[0].info.name for g in shards[1]] == ["resnet18"]
    assert shards[2] == []
    again = [take_shard(groups, names, i, 3) for i in range(3)]
    assert again == shards


def test_run_shards_cover_the_suite_once(cli, tmp_path):
    seen = []
    for i in range(3):
        result = cli(
            "run",
            "--suite",
            "params",
            "--models",
            "resnet1*",
            "--shard",
            f"{i}/3",
            "--json",
            f"s{i}.json",
        )
        assert result.code == 0, result.stderr
        seen.append({r["model"] for r in json.loads((tmp_path / f"s{i}.json").read_text())})
    assert set.union(*seen) == set(list_models("resnet1*"))
    assert sum(map(len, seen)) == len(list_models("resnet1*"))
    bad = cli("run", "--suite", "params", "--shard", "3/3")
    assert bad.code == 2
    assert "--shard '3/3' is not i/N" in bad.stderr
