"""What a record's ``detail`` holds, one frozen type per metric, written and read the same way.

A measure builds one of these; the store writes it as JSON (:meth:`Detail.as_json`); the
report reads it back with :meth:`Detail.from_json` (through
:func:`dynbench.report.data.detail`, which picks the type from the record's metric by
:data:`DETAILS`), so a field the writer renames fails where it is read, not as a silent
``None`` from a dict.

Reading tolerates stores written by other versions: a field the type does not know is
ignored, and an optional field a store lacks takes its default.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

D = TypeVar("D", bound="Detail")


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

    @classmethod
    def from_json(cls: type[D], data: str | Mapping[str, Any] | Detail | None) -> D:
        """The detail as stored (JSON text), as measured (a mapping) or already typed."""
        if isinstance(data, cls):
            return data
        if isinstance(data, Detail):
            data = data.as_json()
        values = json.loads(data or "{}") if isinstance(data, str) else dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True, kw_only=True)
class NoDetail(Detail):
    """A count (params) or a figure derived from another record: nothing to add."""


@dataclass(frozen=True, kw_only=True)
class ErrorDetail(Detail):
    """A measurement that may have failed (``error``: its one-line message)."""

    error: str | None = None


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
class WeightBytesDetail(Detail):
    """The bytes of weights one image reads beside a static model of the same shapes."""

    static_equivalent_bytes: int
    ratio_to_static: float | None = None


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

    @property
    def ci95(self) -> tuple[float | None, float | None]:
        """(low, high), or (None, None) where the rounds were too few for an interval."""
        if self.ci95_low is None or self.ci95_high is None:
            return None, None
        return self.ci95_low, self.ci95_high


@dataclass(frozen=True, kw_only=True)
class GpuDetail(Detail):
    """A GPU throughput (measure/gpu.py's ``ThroughputResult.detail``) and the device."""

    gpu: str | None = None
    oom: bool | None = None
    elapsed_ms: float | None = None  # the median block of the suite's iterations
    block_ms: list[float] | None = None
    spread: float | None = None  # (slowest - fastest block) / median block
    warmup_ms: list[float] | None = None
    steady: bool | None = None
    allocator: list[dict[str, int]] | None = None
    host_syncs: int | None = None
    peak_reserved_bytes: int | None = None
    cudnn_benchmark: bool | None = None
    tf32: dict[str, bool] | None = None
    gpu_before: dict[str, Any] | None = None
    gpu_after: dict[str, Any] | None = None
    compile_s: float | None = None
    memory_reserve_gib: float | None = None
    peak_memory_bytes: int | None = None  # the spatial executions' throughput
    ms_per_call: float | None = None


@dataclass(frozen=True, kw_only=True)
class ProfileDetail(Detail):
    """Where a phase profile's traces are, and which clock timed it."""

    trace_dir: str
    trace_files: list[str]
    clock: str | None = None  # device | host


@dataclass(frozen=True, kw_only=True)
class BlocksDetail(Detail):
    """A spatial DynConv model's blocks at one mask: each block's MAdds and granularity."""

    blocks: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class CeilingDetail(Detail):
    """How a machine ceiling (read bandwidth or GEMM rate) was taken."""

    median_s: float
    iqr_over_median: float
    calls: int
    read_bytes: int | None = None  # read_bandwidth
    madds_per_call: int | None = None  # gemm_rate
    last_level_cache_bytes: int | None = None
    cpu_mhz: float | None = None
    load: float | None = None


@dataclass(frozen=True, kw_only=True)
class LayerBytesDetail(Detail):
    """Each conv, linear and operator layer's bytes and MAdds at batch 1."""

    madds: int
    layers: list[dict[str, Any]]


# metric -> the type of its records' detail (every metric of results.names.METRICS)
DETAILS: dict[str, type[Detail]] = {
    "params": NoDetail,
    "params_trainable": NoDetail,
    "params_no_classifier": NoDetail,
    "madds": CounterDetail,
    "weight_bytes_per_image": WeightBytesDetail,
    "latency_ms": TimingDetail,
    "latency_ratio": RatioDetail,
    "cpu_images_per_s": NoDetail,
    "gpu_images_per_s": GpuDetail,
    "gpu_peak_memory": GpuDetail,
    "train_step_ms_per_image": TimingDetail,
    "train_step_ratio": RatioDetail,
    "batch_latency_ms": TimingDetail,
    "batch_latency_ratio": RatioDetail,
    "profile_ms": ProfileDetail,
    "resolution_madds": ErrorDetail,
    "conditional_madds": BlocksDetail,
    "spatial_latency_ms": TimingDetail,
    "spatial_latency_ratio": RatioDetail,
    "spatial_gpu_images_per_s": GpuDetail,
    "read_bandwidth": CeilingDetail,
    "gemm_rate": CeilingDetail,
    "layer_bytes_per_image": LayerBytesDetail,
    "error": ErrorDetail,
}


def read_detail(metric: str, data: str | Mapping[str, Any] | Detail | None) -> Detail:
    """A record's detail as the type its metric writes."""
    return DETAILS[metric].from_json(data)
