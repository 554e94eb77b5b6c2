"""The measures the report's floor is derived from: the machine's ceilings, each model's layers.

``machine`` times this machine's streaming read bandwidth and fp32 GEMM rate at one
thread and on every core (:mod:`dynbench.measure.ceilings`); ``roofline`` stores each
model's per-layer MAdds and bytes at batch 1 (:mod:`dynbench.measure.roofline`). The
floor itself is computed in the report from both, against the ceilings of the machine
that measured the latency, so that a store holds facts and the report the arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

from dynbench.measure.ceilings import (
    Ceiling,
    default_read_bytes,
    gemm_rate,
    last_level_cache_bytes,
    read_bandwidth,
)
from dynbench.measure.environment import all_cores, cpu_mhz
from dynbench.measure.roofline import layer_work
from dynbench.measure.timing import load_average
from dynbench.models.registry import ModelInfo
from dynbench.results.names import MACHINE_MODEL, ceiling_scope
from dynbench.results.record import Record
from dynbench.run.family import Emit, Progress
from dynbench.run.settings import MachineSettings, SizeSettings

METHOD = "torch.utils.benchmark"


def machine(settings: MachineSettings, emit: Emit, progress: Progress) -> None:
    """Read bandwidth (GB/s) and GEMM rate (GMAdds/s) at one thread and on every core."""
    nbytes = int(settings.read_mib * 2**20) if settings.read_mib else default_read_bytes()
    size, min_run_time = settings.gemm_size, settings.min_run_time
    previous = torch.get_num_threads()
    try:
        for threads in sorted({1, all_cores()}):
            scope = ceiling_scope(threads)
            progress(f"read bandwidth, {scope}")
            emit(_record("read_bandwidth", read_bandwidth(nbytes, threads, min_run_time), scope))
            progress(f"GEMM rate, {scope}")
            emit(_record("gemm_rate", gemm_rate(size, threads, min_run_time), scope))
    finally:
        torch.set_num_threads(previous)


def _record(metric: str, ceiling: Ceiling, scope: str) -> Record:
    """A ceiling in GB/s or GMAdds/s (1e9 per second), with how it was taken."""
    load = load_average()
    return Record(
        model=MACHINE_MODEL,
        metric=metric,
        value=ceiling.rate / 1e9,
        method=scope,
        settings={"threads": ceiling.threads, "timer": METHOD},
        detail={
            ("read_bytes" if metric == "read_bandwidth" else "madds_per_call"): ceiling.work,
            "median_s": ceiling.median_s,
            "iqr_over_median": ceiling.iqr_s / ceiling.median_s,
            "calls": ceiling.calls,
            "last_level_cache_bytes": last_level_cache_bytes(),
            "cpu_mhz": cpu_mhz(),
            "load": load,
        },
    )


def roofline(info: ModelInfo, model: nn.Module, settings: SizeSettings) -> list[Record]:
    """Per-layer MAdds and bytes at batch 1; the value is the bytes of all layers."""
    size = info.resolved_input_size(settings.input_size)
    with torch.no_grad():
        layers = layer_work(model, torch.randn(1, *size))
    return [
        Record(
            model=info.name,
            metric="layer_bytes_per_image",
            value=float(sum(layer.bytes for layer in layers)),
            method="analytic",
            settings={"input_size": list(size), "batch": 1},
            detail={
                "madds": sum(layer.madds for layer in layers),
                "layers": [layer.as_json() for layer in layers],
            },
        )
    ]
