"""The batch sweep: latency per image at several batch sizes, families interleaved.

A dynamic model forms one kernel per sample (or, on the experts route, runs all K
kernels over the batch), so its cost grows with the batch differently from its
static baseline's; the papers time batch 1 (CPU) or one large batch (GPU) only.
At each batch the family is timed as the latency suite times it (interleaved,
shuffled rounds, ``torch.utils.benchmark``), on every core of the CPU, or on the
GPU when CUDA is present, and each record says which implementation every
operator ran at that batch (the kernel-mixing convs choose their route by shape,
see :func:`dynbench.ops.base.experts_pay`). Every time stored is per image: the
call's median, its IQR and its rounds divided by the batch.
"""

from __future__ import annotations

import torch

from dynbench.errors import DynbenchError
from dynbench.measure.environment import all_cores
from dynbench.measure.timing import inference_call, set_threads
from dynbench.results.record import error_record
from dynbench.run.family import Emit, Member, Progress
from dynbench.run.options import prepare
from dynbench.run.rounds import (
    baseline_ready,
    emit_or_stop,
    latency_records,
    measure_interleaved,
    ratio_records,
)
from dynbench.run.settings import BatchSweepSettings

DEVICES = ("auto", "cpu", "cuda")


def sweep_device(setting: str) -> str:
    """``cuda`` when asked for, or under ``auto`` when a CUDA device is present; else ``cpu``."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def sweep_threads(setting: int | str) -> int:
    """Intra-op threads: ``all`` = every core this process may run on."""
    return all_cores() if setting == "all" else int(setting)


def check_sweep(settings: dict, source: str) -> None:
    batches = settings.get("batches", [1])
    if (
        not isinstance(batches, list)
        or not batches
        or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in batches)
        or len(set(batches)) != len(batches)
    ):
        raise DynbenchError(
            f"{source}: batches = {batches!r} is not a list of distinct positive integers; "
            "use e.g. [1, 2, 4, 8]"
        )
    threads = settings.get("threads", "all")
    if threads != "all" and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0
    ):
        raise DynbenchError(f"{source}: threads = {threads!r} is not 'all' or a positive integer")
    device = settings.get("device", "auto")
    if device not in DEVICES:
        raise DynbenchError(f"{source}: device = {device!r} is not accepted; accepted: {DEVICES}")
    if device == "cuda" and not torch.cuda.is_available():
        raise DynbenchError(f"{source}: device = 'cuda' but no CUDA device is present; use 'auto'")


def batch_sweep(
    members: list[Member], settings: BatchSweepSettings, emit: Emit, progress: Progress
) -> None:
    """Each batch of ``settings['batches']`` in turn (smallest first): the family's
    per-image latency and every variant's ratio to the baseline at that batch."""
    device = sweep_device(settings.device)
    threads = set_threads(sweep_threads(settings.threads))
    try:
        for batch in sorted(settings.batches):
            _one_batch(members, batch, device, threads, settings, emit, progress)
    finally:
        for _, model in members:
            model.to("cpu")


def _one_batch(
    members: list[Member],
    batch: int,
    device: str,
    threads: dict[str, int],
    settings: BatchSweepSettings,
    emit: Emit,
    progress: Progress,
) -> None:
    stage = "batch_sweep"
    prepared = {}
    for info, model in members:
        size = info.resolved_input_size(settings.input_size)
        try:
            x = torch.randn(batch, *size, device=device)
            prepared[info.name] = prepare(model.to(device), x, settings)
        except Exception as exc:  # the device's (or the dtype's) limit, not the run's
            emit(error_record(info.name, stage, exc))
    if not baseline_ready(members, prepared, stage, emit):
        return
    members = [(info, model) for info, model in members if info.name in prepared]
    calls = {name: inference_call(p.model, p.x) for name, p in prepared.items()}
    results, rounds = measure_interleaved(
        calls,
        settings,
        lambda state: progress(f"batch {batch}: {state}"),
        [p.model for p in prepared.values()],
        device=device,
        **threads,
    )
    common = {"batch": batch, "device": device, "threads": threads["threads"]}
    metric = "batch_latency_ms"
    records = latency_records(metric, members, results, rounds, settings, prepared, common, batch)
    records += ratio_records("batch_latency_ratio", results, members, rounds, common)
    emit_or_stop(results, records, emit)
