"""Where an unsteady GPU throughput goes, block by block, from torch.profiler.

A model whose timed blocks spread by tens of percent does something different from
block to block. This runs it for a few blocks under the profiler (CPU and CUDA
activities) and counts, per block, what would make a block slow: the CUDA runtime's
``cudaMalloc``/``cudaFree`` calls (the caching allocator going back to the driver),
host synchronisations inside the forward (``cudaStreamSynchronize``,
``cudaDeviceSynchronize``, ``cudaEventSynchronize``), copies to the host (``Memcpy
DtoH``), the device time of the kernels, and the allocator's own counters; and the top
kernels by device time. On a CPU-only profile the same summary names the top CPU ops
and counts no CUDA calls. Each block ends with one synchronisation of the reader's own,
marked and left out of the counts.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from dynbench.measure.gpu import counter_deltas
from dynbench.measure.profiling import kineto_logs_dropped

BLOCK = "dynbench block"
OWN_SYNC = "dynbench sync"
MALLOCS = ("cudaMalloc",)
FREES = ("cudaFree",)
SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
DTOH = "Memcpy DtoH"


@dataclass(frozen=True)
class Event:
    """One profiled event, reduced to what the summary reads (microseconds)."""

    name: str
    start_us: float
    end_us: float
    on_device: bool = False

    @property
    def duration_us(self) -> float:
        return self.end_us - self.start_us


def from_profiler(events: Iterable) -> list[Event]:
    """torch.profiler's FunctionEvents as :class:`Event` s."""
    return [
        Event(e.name, e.time_range.start, e.time_range.end, e.device_type != DeviceType.CPU)
        for e in events
    ]


def _ours(event: Event) -> bool:
    return event.name.startswith(BLOCK) or event.name == OWN_SYNC


def _inside(event: Event, ranges: list[tuple[float, float]]) -> bool:
    return any(start <= event.start_us <= end for start, end in ranges)


def summarise(events: list[Event], top: int = 10) -> dict:
    """Per-block counts and the top kernels (device events; CPU ops where none ran on a
    device) of a profile whose blocks are ``dynbench block <i>`` ranges. An event belongs
    to the last block that began before it (a kernel runs after the call that launched
    it, and before the block's closing synchronisation). The marks' own copies on the
    device (kineto's user annotations) are dropped."""
    events = [e for e in events if not (e.on_device and _ours(e))]  # kineto's copies
    marks = sorted((e for e in events if e.name.startswith(BLOCK)), key=lambda e: e.start_us)
    if not marks:
        raise ValueError(f"no '{BLOCK} <i>' ranges in the profile")
    starts = [m.start_us for m in marks]
    own = [(e.start_us, e.end_us) for e in events if e.name == OWN_SYNC]
    blocks = [
        {"block": i, "host_ms": round(m.duration_us / 1e3, 3), "cudaMalloc": 0, "cudaFree": 0,
         "syncs": 0, "memcpy_dtoh": 0, "kernels": 0, "kernel_ms": 0.0}
        for i, m in enumerate(marks)
    ]  # fmt: skip
    device_events = [e for e in events if e.on_device]
    ranked = device_events or [
        e for e in events if e.name.startswith("aten::") and not e.name.startswith(BLOCK)
    ]
    totals: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for event in events:
        index = bisect.bisect_right(starts, event.start_us) - 1
        if index < 0 or _ours(event):
            continue
        block = blocks[index]
        if event.name.startswith(MALLOCS) and not event.name.startswith("cudaMallocHost"):
            block["cudaMalloc"] += 1
        elif event.name.startswith(FREES) and not event.name.startswith("cudaFreeHost"):
            block["cudaFree"] += 1
        elif event.name in SYNCS and not _inside(event, own):
            block["syncs"] += 1
        elif event.on_device and event.name.startswith(DTOH):
            block["memcpy_dtoh"] += 1
        elif event.on_device and not event.name.startswith(("Memcpy", "Memset")):
            block["kernels"] += 1
            block["kernel_ms"] += event.duration_us / 1e3
    for event in ranked:
        totals[event.name] += event.duration_us
        calls[event.name] += 1
    for block in blocks:
        block["kernel_ms"] = round(block["kernel_ms"], 3)
    n = len(blocks)
    ops = [
        {"name": name, "calls_per_block": calls[name] / n, "ms_per_block": round(us / n / 1e3, 3)}
        for name, us in totals.most_common(top)
    ]
    return {"blocks": blocks, "top": ops, "device": bool(device_events)}


def profile_blocks(
    model: nn.Module,
    x: torch.Tensor,
    iterations: int,
    blocks: int,
    warmup: int = 3,
    memory_stats: Callable[[], dict] | None = None,
) -> dict:
    """Run ``model`` on ``x`` (both on their device already) for ``blocks`` blocks of
    ``iterations`` calls under torch.profiler, after ``warmup`` calls; the
    :func:`summarise` summary, each block with the allocator counters' deltas."""
    cuda = x.is_cuda
    stats = memory_stats or (torch.cuda.memory_stats if cuda else dict)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])

    def sync() -> None:
        if cuda:
            with record_function(OWN_SYNC):
                torch.cuda.synchronize()

    deltas = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync()
        with kineto_logs_dropped(), profile(activities=activities) as prof:
            for i in range(blocks):
                before = stats()
                with record_function(f"{BLOCK} {i}"):
                    for _ in range(iterations):
                        model(x)
                    sync()
                deltas.append(counter_deltas(before, stats()))
    summary = summarise(from_profiler(prof.events()))
    for block, delta in zip(summary["blocks"], deltas, strict=True):
        block["allocator"] = delta
    return summary


def markdown(name: str, summary: dict) -> str:
    """The summary as two markdown tables: the blocks, then the top kernels (or ops)."""
    what = "kernels" if summary["device"] else "CPU ops (no device activity)"
    lines = [
        f"**{name}**: per block",
        "",
        "| block | host ms | cudaMalloc | cudaFree | syncs | Memcpy DtoH | kernels | "
        "kernel ms | allocator |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for b in summary["blocks"]:
        counters = ", ".join(f"{k} {v}" for k, v in b.get("allocator", {}).items()) or "-"
        lines.append(
            f"| {b['block']} | {b['host_ms']} | {b['cudaMalloc']} | {b['cudaFree']} | "
            f"{b['syncs']} | {b['memcpy_dtoh']} | {b['kernels']} | {b['kernel_ms']} | "
            f"{counters} |"
        )
    lines += ["", f"top {what}, per block:", "", "| name | calls | ms |", "| --- | --- | --- |"]
    lines += [f"| {op['name'][:90]} | {op['calls_per_block']:g} | {op['ms_per_block']} |"
              for op in summary["top"]]  # fmt: skip
    return "\n".join(lines) + "\n"
