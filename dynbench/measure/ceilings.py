"""This machine's ceilings: streaming read bandwidth and fp32 GEMM rate, timed with torch ops.

A model cannot run faster than the bytes its layers must move allow, nor faster than
its multiply-adds at the best matrix-multiply rate the machine reaches; the report's
floor (:mod:`dynbench.measure.roofline`) divides each layer's bytes and MAdds by these
two numbers. Both are taken with the ops a model itself calls (``torch.sum`` over an
array far larger than the last-level cache, ``torch.mm`` of large square matrices), at
one thread (the batch-1 latency setting) and on every core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

# the read array is at least this many times the last-level cache, and at least MIN_READ
CACHE_MULTIPLE = 4
MIN_READ_BYTES = 1 << 30


@dataclass(frozen=True)
class Ceiling:
    """One ceiling: ``rate`` in units per second over the median call, and the spread."""

    rate: float  # bytes/s for a read, MAdds/s for a GEMM
    work: int  # bytes read or MAdds done by one call
    median_s: float
    iqr_s: float
    calls: int
    threads: int


def last_level_cache_bytes() -> int | None:
    """The largest CPU cache the OS reports (sysfs), None where it reports none."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


def default_read_bytes() -> int:
    """CACHE_MULTIPLE times the last-level cache, at least MIN_READ_BYTES."""
    return max(MIN_READ_BYTES, CACHE_MULTIPLE * (last_level_cache_bytes() or 0))


def _timed(stmt: str, values: dict, threads: int, min_run_time: float, work: int) -> Ceiling:
    timer = Timer(stmt=stmt, globals={"torch": torch, **values}, num_threads=threads)
    timer.timeit(1)  # first touch: pages mapped, kernels chosen
    measured = timer.blocked_autorange(min_run_time=min_run_time)
    median = measured.median
    return Ceiling(work / median, work, median, measured.iqr, len(measured.times), threads)


def read_bandwidth(nbytes: int, threads: int, min_run_time: float) -> Ceiling:
    """Bytes per second ``torch.sum`` streams from an fp32 array of ``nbytes``."""
    x = torch.rand(max(1, nbytes // 4))
    return _timed("torch.sum(x)", {"x": x}, threads, min_run_time, x.numel() * 4)


def gemm_rate(size: int, threads: int, min_run_time: float) -> Ceiling:
    """MAdds per second of an fp32 ``torch.mm`` of two ``size`` x ``size`` matrices
    (``size`` cubed multiply-adds a call), written into a preallocated output."""
    a, b, out = torch.rand(size, size), torch.rand(size, size), torch.empty(size, size)
    return _timed(
        "torch.mm(a, b, out=out)", {"a": a, "b": b, "out": out}, threads, min_run_time, size**3
    )
