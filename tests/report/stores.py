"""Constructed stores for report tests: known values in, known verdicts out.

Every row is a real :class:`~dynbench.results.record.Record` with the typed detail its
metric writes (:data:`dynbench.results.details.DETAILS`), stored into a real SQLite store
and read back as the report reads one: a detail field the writers do not have fails here,
and one they must have is filled with what a runner would write when a test does not care.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from dynbench.report.data import family_of
from dynbench.results.details import (
    DETAILS,
    BlocksDetail,
    CeilingDetail,
    CounterDetail,
    LayerBytesDetail,
    ProfileDetail,
    RatioDetail,
    TimingDetail,
    WeightBytesDetail,
)
from dynbench.results.record import Record
from dynbench.results.schema import runs
from dynbench.results.store import ResultStore

ENVIRONMENT_DICT = {"cpu": "test CPU", "threads": 1, "torch": "2.x"}
ENVIRONMENT = json.dumps(ENVIRONMENT_DICT)
SUITE = "test"


@dataclass(frozen=True)
class Stored:
    """A record as the runner stores it: in a run, on a machine (its environment)."""

    record: Record
    run_id: str = "run1"
    environment: dict = dataclasses.field(default_factory=lambda: dict(ENVIRONMENT_DICT))


def _required(kind: type, model: str, value: float | None, detail: dict) -> dict:
    """What a runner always writes for a detail of ``kind`` and a test leaves out."""
    rounds = {"rounds": 150, "interrupted": False}
    if kind is TimingDetail:
        return {**rounds, "iqr_ms": 0.0}
    if kind is RatioDetail:
        return {**rounds, "baseline": family_of(model)[0]}
    if kind is CounterDetail:
        return {"skipped_ops": {}, "extra_ops": {}, "spread": 0.0, "disagree": False}
    if kind is WeightBytesDetail:
        return {"static_equivalent_bytes": int(value or 0)}
    if kind is CeilingDetail:
        return {"median_s": 1.0, "iqr_over_median": 0.01, "calls": 10}
    if kind is BlocksDetail:
        return {"blocks": []}
    if kind is LayerBytesDetail:
        return {"madds": sum(layer["madds"] for layer in detail.get("layers", []))}
    if kind is ProfileDetail:
        return {"trace_dir": "", "trace_files": []}
    return {}


def record(model, metric, value, method, detail=None, settings=None, run_id="run1", unit=""):
    """One stored record; ``unit`` is the metric's own (:attr:`Record.unit`), the argument
    only says what the test expects of it."""
    kind = DETAILS[metric]
    detail = detail or {}
    typed = kind(**{**_required(kind, model, value, detail), **detail})
    made = Record(
        model=model,
        metric=metric,
        value=value,
        method=method,
        settings=settings or {},
        detail=typed,
        suite=SUITE,
    )
    assert not unit or made.unit == unit, f"{metric} is in {made.unit}, not {unit}"
    return Stored(made, run_id)


def on_machine(rows: list[Stored], environment: dict) -> list[Stored]:
    """``rows`` as measured on a machine of ``environment``."""
    return [dataclasses.replace(row, environment=environment) for row in rows]


def sizes(model, params, conv_linear, analytic, weight_bytes):
    return [
        record(model, "params", params, "count", unit="params"),
        record(model, "params_no_classifier", params, "count", unit="params"),
        record(model, "madds", conv_linear, "conv_linear", unit="MAdds"),
        record(model, "madds", analytic, "analytic", unit="MAdds"),
        record(model, "weight_bytes_per_image", weight_bytes, "analytic", unit="bytes"),
    ]


def latency(model, ms, iqr=0.04, faults=0.5, ratio=None, low=None, high=None, run_id="run1"):
    method = "torch.utils.benchmark"
    detail = {
        "iqr_over_median": iqr,
        "iqr_ms": round(iqr * ms, 4),
        "minor_faults_per_call": faults,
        "noisy": iqr > 0.1 or faults > 50,
        "load_before": 1.0,
        "load_after": 1.0,
        "rounds": 150,
    }
    rows = [record(model, "latency_ms", ms, method, detail, {"impl": "fast"}, run_id, "ms")]
    if ratio is not None:
        ratio_detail = {"baseline": "resnet18", "ci95_low": low, "ci95_high": high}
        rows.append(record(model, "latency_ratio", ratio, method, ratio_detail, {}, run_id))
    return rows


def store_frame(rows: list[Stored], db: Path) -> pd.DataFrame:
    """``rows`` written into a store at ``db`` in order (each run registered first, as the
    runner's ``start_run`` does), and the store's frame."""
    store = ResultStore(db)
    started: set[str] = set()
    for row in rows:
        if row.run_id not in started:
            started.add(row.run_id)
            with store.engine.begin() as conn:
                conn.execute(
                    sa.insert(runs).values(
                        run_id=row.run_id,
                        suite=SUITE,
                        started="2026-11-29T00:00:00Z",
                        finished="2026-11-29T00:00:01Z",
                        status="finished",
                        environment=json.dumps(row.environment),
                    )
                )
        store.add(row.run_id, row.record, row.environment)
    frame = store.frame()
    store.engine.dispose()
    return frame


def frame(*groups: list[Stored]) -> pd.DataFrame:
    """The groups' records stored in a fresh store, read back as the report reads it."""
    with tempfile.TemporaryDirectory() as tmp:
        return store_frame([row for group in groups for row in group], Path(tmp) / "runs.sqlite")


BASE = sizes("resnet18", 11_689_512, 1_814_073_344, 1_814_073_344, 46_758_048)
DYCONV = sizes("resnet18_dyconv_4x", 45_475_008, 1_815_000_000, 1_860_000_000, 181_900_032)
