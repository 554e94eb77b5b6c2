"""A run's settings: typed and frozen per step, built once from the suite and the command
line, never written into the suite."""

import dataclasses

import pytest

from dynbench.errors import DynbenchError
from dynbench.run.settings import LatencySettings, SparsitySettings
from dynbench.run.steps import STEPS
from dynbench.run.suite import parse_suite, run_settings

SUITE = 'measures = ["latency"]\nmodels = ["resnet10"]\n[settings]\nrounds = 20\n'


def test_options_go_over_the_suite_without_changing_it():
    suite = parse_suite("s", SUITE)
    timing = {"compile": None, "dtype": "bf16", "threads": 2}
    settings = run_settings(suite, timing, (3, 32, 32))
    assert suite.settings == {"rounds": 20}
    latency = settings.for_step(LatencySettings)
    assert (latency.rounds, latency.dtype, latency.threads) == (20, "bf16", 2)
    assert latency.input_size == [3, 32, 32] and latency.compile is False  # None: not given
    assert latency.max_rounds == 400  # the default
    with pytest.raises(dataclasses.FrozenInstanceError):
        latency.rounds = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        suite.settings = {}  # type: ignore[misc]


def test_an_option_no_step_takes_is_refused_by_its_name():
    suite = parse_suite("s", SUITE)
    with pytest.raises(DynbenchError, match="^--counters applies to the measures madds, "):
        run_settings(suite, {}, counters="fvcore")
    with pytest.raises(DynbenchError, match="^--threads: threads = 0 is not a positive integer"):
        run_settings(suite, {"threads": 0})


def test_a_record_stores_the_settings_that_were_set():
    stamped = SparsitySettings(densities=[0.5]).stamped()
    assert stamped["densities"] == [0.5] and stamped["rounds"] == 20
    assert "input_size" not in stamped  # None: each model's own


def test_each_step_accepts_exactly_the_fields_of_its_settings():
    assert STEPS["latency"].settings.names()[:3] == ["input_size", "rounds", "max_rounds"]
    assert "densities" not in STEPS["latency"].settings.names()
    with pytest.raises(DynbenchError, match="setting 'densities' is not used by"):
        parse_suite("s", SUITE + "densities = [0.5]\n")
