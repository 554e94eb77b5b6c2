"""One measurement, as the store, the JSON export and the report see it.

:class:`Record` is small, frozen and keyword-only (like ``torch.utils.benchmark``'s
``Measurement``): a measure makes it, the runner stamps the suite and settings on a
copy, the store writes it. Its ``detail`` says what the method noticed; for a
counter and a timing that is a typed object below, serialised to plain JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynbench.errors import one_line
from dynbench.results.names import unit_of


@dataclass(frozen=True, kw_only=True)
class Detail:
    """Base of the typed details: JSON without the fields that are None."""

    def as_json(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None or f.metadata.get("keep_none")
        }

    def __getitem__(self, key: str) -> Any:
        return self.as_json()[key]


@dataclass(frozen=True, kw_only=True)
class CounterDetail(Detail):
    """What one MAdds counter did on one model."""

    skipped_ops: dict[str, int]  # arithmetic ops the counter has no formula for
    extra_ops: dict[str, int]  # MAdds it gave ops other than convolutions and matmuls
    spread: float  # (max - min) / max over all counters' totals for this model
    disagree: bool  # spread above the disagreement threshold
    error: str | None = None  # the counter crashed: its one-line message
    breakdown: dict[str, int] | None = None  # the analytic method's parts
    # the analytic method's aggregation and feature_scale on the cheaper route per layer
    cheaper_route: dict[str, int] | None = None


@dataclass(frozen=True, kw_only=True)
class RoundsDetail(Detail):
    """How the interleaved rounds of a timed family went (shared by all its records)."""

    load_before: float | None = field(default=None, metadata={"keep_none": True})
    load_after: float | None = field(default=None, metadata={"keep_none": True})
    rounds: int
    interrupted: bool
    widest_ci: float | None = None  # with a ci_target: the widest ratio CI at the end
    cpu_mhz_before: float | None = None
    cpu_mhz_after: float | None = None
    threads: int | None = None
    interop_threads: int | None = None
    device: str | None = None
    allocator: str | None = None  # pinned: freed memory stays mapped (measure/allocator.py)


@dataclass(frozen=True, kw_only=True)
class TimingDetail(RoundsDetail):
    """One model's times over the rounds, and which implementation ran."""

    iqr_ms: float
    iqr_over_median: float | None = None
    noisy: bool | None = None
    round_ms: list[float] | None = None
    step_ms: float | None = None
    implementations: dict[str, int] | None = None  # operator implementation -> layers
    minor_faults_per_call: float | None = None  # page faults of its turns, per call
    major_faults_per_call: float | None = None
    compile_s: float | None = None  # torch.compile: the first call, which compiled


@dataclass(frozen=True, kw_only=True)
class RatioDetail(RoundsDetail):
    """A variant's ratio to its family baseline with a distribution-free 95% interval."""

    baseline: str
    ci95_low: float | None = field(default=None, metadata={"keep_none": True})
    ci95_high: float | None = field(default=None, metadata={"keep_none": True})


@dataclass(frozen=True, kw_only=True)
class Record:
    """One measurement: ``value`` of ``metric`` for ``model`` by ``method``."""

    model: str
    metric: str
    value: float | None
    method: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    detail: Detail | Mapping[str, Any] = field(default_factory=dict)
    suite: str = ""

    @property
    def unit(self) -> str:
        return unit_of(self.metric)

    def detail_json(self) -> dict[str, Any]:
        return self.detail.as_json() if isinstance(self.detail, Detail) else dict(self.detail)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "suite": self.suite,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "method": self.method,
            "settings": dict(self.settings),
            "detail": self.detail_json(),
        }


def error_record(model: str, stage: str, exc: BaseException) -> Record:
    """A model whose ``stage`` (a measure, or building it) raised: the one-line message."""
    message = one_line(exc)
    return Record(model=model, metric="error", value=None, method=stage, detail={"error": message})
