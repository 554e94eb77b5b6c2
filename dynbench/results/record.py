"""One measurement, as the store, the JSON export and the report see it.

:class:`Record` is small, frozen and keyword-only (like ``torch.utils.benchmark``'s
``Measurement``): a measure makes it, the runner stamps the suite and settings on a
copy, the store writes it. Its ``detail`` says what the method noticed: the typed object
of its metric (:mod:`dynbench.results.details`), serialised to plain JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynbench.errors import one_line
from dynbench.results.details import (
    CounterDetail,
    Detail,
    ErrorDetail,
    RatioDetail,
    RoundsDetail,
    TimingDetail,
)
from dynbench.results.names import unit_of

# the typed details the writers import from here with the record (dynbench.results.details
# holds every metric's)
__all__ = [
    "CounterDetail",
    "Detail",
    "RatioDetail",
    "Record",
    "RoundsDetail",
    "TimingDetail",
    "error_record",
]


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
    return Record(
        model=model, metric="error", value=None, method=stage, detail=ErrorDetail(error=message)
    )
