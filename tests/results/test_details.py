"""Every metric's detail type: one per metric, JSON out and back unchanged, and every
detail the shipped reference store holds reads back as its metric's type."""

import importlib.resources
import json

import pytest

from dynbench.results.details import (
    DETAILS,
    RatioDetail,
    TimingDetail,
    read_detail,
)
from dynbench.results.names import METRICS
from dynbench.results.record import Record, error_record
from dynbench.results.store import ResultStore


def test_every_metric_has_one_detail_type():
    assert set(DETAILS) == set(METRICS)


def test_a_detail_reads_back_what_it_wrote():
    timing = TimingDetail(
        rounds=150, interrupted=False, iqr_ms=0.4, iqr_over_median=0.02, load_before=None,
        implementations={"fast/mixed": 16}, round_ms=[20.1, 20.3],
    )  # fmt: skip
    text = json.dumps(Record(model="m", metric="latency_ms", value=20.2, method="x",
                             detail=timing).detail_json())  # fmt: skip
    assert json.loads(text)["load_before"] is None  # kept: "not recorded" is information
    assert "step_ms" not in json.loads(text)  # a None field is left out
    assert TimingDetail.from_json(text) == timing
    assert read_detail("latency_ms", json.loads(text)) == timing


def test_a_field_of_another_version_is_ignored_and_a_missing_one_refused():
    stored = {"baseline": "resnet18", "rounds": 6, "interrupted": False, "added_later": 1}
    assert RatioDetail.from_json(stored).ci95 == (None, None)
    with pytest.raises(TypeError, match="baseline"):
        RatioDetail.from_json({"rounds": 6, "interrupted": False})


def test_an_error_record_carries_an_error_detail():
    made = error_record("m", "madds", ValueError("bad shape"))
    assert made.detail_json() == {"error": "ValueError: bad shape"}
    assert read_detail("error", made.detail_json()).error == "ValueError: bad shape"


def test_every_detail_of_the_reference_store_reads_as_its_metric_type():
    path = importlib.resources.files("dynbench.reference").joinpath("reference.sqlite")
    with importlib.resources.as_file(path) as db:
        frame = ResultStore(db, write=False).frame()
    assert len(frame) > 100
    kinds = set()
    for row in frame.itertuples(index=False):
        typed = read_detail(row.metric, row.detail)
        assert isinstance(typed, DETAILS[row.metric])
        assert typed.as_json() == json.loads(row.detail), (row.metric, row.model)
        kinds.add(type(typed))
    assert {TimingDetail, RatioDetail} <= kinds
