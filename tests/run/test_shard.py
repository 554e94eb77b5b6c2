"""--shard i/N: deterministic, disjoint, complete, and families kept whole for timing."""

import json
import re

import pytest

from dynbench.errors import DynbenchError
from dynbench.models import list_models
from dynbench.run.family import families, resolve_targets
from dynbench.run.shard import parse_shard, slurm_shard, take_shard
from dynbench.run.suite import load_suite


@pytest.mark.parametrize("text", ["8/8", "-1/8", "1/0", "a/b", "3", "1/2/3"])
def test_bad_shards_are_refused(text):
    with pytest.raises(DynbenchError, match="is not i/N with 0 <= i < N"):
        parse_shard(text)


@pytest.mark.parametrize(
    ("environ", "shard"),
    [
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8"}, (3, 8)),
        ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1"},
         (7, 8)),
        ({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0",
          "SLURM_ARRAY_TASK_STEP": "2"}, (3, 4)),
    ],
)  # fmt: skip
def test_shard_auto_is_the_task_rank_in_its_slurm_array(environ, shard):
    assert parse_shard("auto", environ) == slurm_shard(environ) == shard


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "needs a SLURM job array; not set here: SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT"),
        ({"SLURM_ARRAY_TASK_ID": "3"}, "not set here: SLURM_ARRAY_TASK_COUNT"),
        ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"}, "are not whole numbers"),
        ({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4"}, "task 9 of an array of 4"),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4",
          "SLURM_ARRAY_TASK_STEP": "2"}, "has no rank from 0 to N-1"),
    ],
)  # fmt: skip
def test_shard_auto_outside_a_slurm_array_is_refused(environ, message):
    with pytest.raises(DynbenchError, match=re.escape(message)):
        parse_shard("auto", environ)


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
