"""The timing measures of suites: latency, train-step, throughput and profile.

Latency and train-step time a whole family (baseline first) interleaved, so that
each variant's ratio to its baseline comes from samples taken side by side; see
:mod:`dynbench.measure.timing`. Each timing record says which implementation of
the operators ran (``settings.impl``, and per layer in ``detail.implementations``).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from dynbench.measure.gpu import cuda_event_timer, measure_throughput, wall_clock_timer
from dynbench.measure.profiling import profile_phases, trace_files
from dynbench.measure.timing import inference_call, set_threads, train_step_call
from dynbench.models.registry import ModelInfo
from dynbench.ops.base import implementations
from dynbench.results.record import Record, TimingDetail, error_record
from dynbench.run.family import Emit, Member, Progress
from dynbench.run.options import DTYPES, Prepared, compiled_if_asked, convert, prepare
from dynbench.run.rounds import (
    METHOD,
    baseline_ready,
    emit_or_stop,
    faults,
    implementation_settings,
    latency_records,
    measure_interleaved,
    ratio_records,
)
from dynbench.run.settings import (
    LatencySettings,
    ProfileSettings,
    ThroughputSettings,
    TrainSettings,
)


def latency(
    members: list[Member], settings: LatencySettings, emit: Emit, progress: Progress
) -> None:
    threads = set_threads(settings.threads)
    prepared = _prepared(members, settings, emit)
    if prepared is None:
        return
    members = [(info, model) for info, model in members if info.name in prepared]
    calls = {name: inference_call(p.model, p.x) for name, p in prepared.items()}
    models = [p.model for p in prepared.values()]
    results, rounds = measure_interleaved(calls, settings, progress, models, **threads)
    common = {"batch": 1}
    records = []
    for record in latency_records(
        "latency_ms", members, results, rounds, settings, prepared, common
    ):
        per_s = 1.0 / results.timed[record.model].median
        records += [
            record,
            Record(
                model=record.model,
                metric="cpu_images_per_s",
                value=per_s,
                method=METHOD,
                settings=record.settings,
            ),
        ]
    records += ratio_records("latency_ratio", results, members, rounds, common)
    emit_or_stop(results, records, emit)


def _prepared(
    members: list[Member], settings: LatencySettings, emit: Emit
) -> dict[str, Prepared] | None:
    """Each member in the suite's dtype and layout, compiled if asked; one that fails gets
    an error record and the family goes on without it, unless it is the baseline: then no
    ratio can be taken, every member says so and the family is not timed (None)."""
    stage = "compile" if settings.compile else "latency"
    prepared: dict[str, Prepared] = {}
    for info, model in members:
        x = torch.randn(1, *info.resolved_input_size(settings.input_size))
        try:
            prepared[info.name] = prepare(model, x, settings)
        except Exception as exc:  # the compiler's (or the dtype's) limit, not the run's
            emit(error_record(info.name, stage, exc))
    return prepared if baseline_ready(members, prepared, stage, emit) else None


def train_step(
    members: list[Member], settings: TrainSettings, emit: Emit, progress: Progress
) -> None:
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = settings.batch or (128 if device == "cuda" else 8)
    calls, compile_s = {}, {}
    stage = "compile" if settings.compile else "train_step"
    for info, model in members:
        try:
            model, dtype, layout = convert(model.to(device), settings)
            size = info.resolved_input_size(settings.input_size)
            with torch.device(device):
                step = train_step_call(
                    compiled_if_asked(model, settings), batch, size, dtype, layout
                )
            if settings.compile:  # the first step compiles: a one-off, timed apart
                start = time.perf_counter()
                step()
                compile_s[info.name] = round(time.perf_counter() - start, 3)
            calls[info.name] = step
        except Exception as exc:  # the compiler's (or the dtype's) limit, not the run's
            emit(error_record(info.name, stage, exc))
            model.to("cpu")
    if not baseline_ready(members, calls, stage, emit):
        return
    members = [(info, model) for info, model in members if info.name in calls]
    results, rounds = measure_interleaved(
        calls,
        settings,
        progress,
        [model for _, model in members],
        device=device,
        threads=torch.get_num_threads(),
    )
    common = {"batch": batch, "device": device}
    records = []
    for info, model in members:
        timed = results.timed[info.name]
        records.append(
            Record(
                model=info.name,
                metric="train_step_ms_per_image",
                value=timed.median * 1e3 / batch,
                method=METHOD,
                settings={**common, **implementation_settings(model)},
                detail=TimingDetail(
                    **vars(rounds),
                    step_ms=round(timed.median * 1e3, 3),
                    iqr_ms=round(timed.iqr * 1e3, 3),
                    implementations=implementations(model),
                    compile_s=compile_s.get(info.name),
                    **faults(timed),
                ),
            )
        )
        model.to("cpu")
    records += ratio_records("train_step_ratio", results, members, rounds, common)
    emit_or_stop(results, records, emit)


def throughput(info: ModelInfo, model: nn.Module, settings: ThroughputSettings) -> list[Record]:
    """Images/s and peak memory of one model on the suite's device (CUDA events; a CPU
    device, which the suite never picks, is timed by the wall clock so that the record
    this builds can be checked without a GPU)."""
    torch.backends.cudnn.benchmark = bool(settings.cudnn_benchmark)
    amp = None if settings.amp == "none" else settings.amp
    cuda = settings.device.startswith("cuda")
    result = measure_throughput(
        model,
        info.resolved_input_size(settings.input_size),
        settings.batch,
        settings.iterations,
        settings.warmup,
        amp=amp,
        channels_last=settings.channels_last,
        dtype=DTYPES[settings.dtype],
        compile_mode=settings.compile_mode if settings.compile else None,
        repeats=settings.repeats,
        device=settings.device,
        timer=cuda_event_timer if cuda else wall_clock_timer,
        steady_tolerance=settings.steady_tolerance,
        max_warmup_blocks=settings.max_warmup_blocks,
        reserve_bytes=int(settings.memory_reserve_gib * 2**30),
    )
    used = {
        "batch": settings.batch,
        "amp": settings.amp,
        "dtype": settings.dtype,
        "channels_last": settings.channels_last,
        "compile": settings.compile,
        **implementation_settings(model),
    }
    detail = {
        "gpu": torch.cuda.get_device_name(0) if cuda else settings.device,
        "memory_reserve_gib": settings.memory_reserve_gib,
        **result.detail(),
    }
    return [
        Record(
            model=info.name,
            metric="gpu_images_per_s",
            value=result.images_per_s,
            method="cuda_events" if cuda else "wall_clock",
            settings=used,
            detail=detail,
        ),
        Record(
            model=info.name,
            metric="gpu_peak_memory",
            value=result.peak_memory_bytes,
            method="max_memory_allocated",
            settings=used,
            detail=detail,
        ),
    ]


def profile(info: ModelInfo, model: nn.Module, settings: ProfileSettings) -> list[Record]:
    device = settings.device
    trace_dir = Path(settings.trace_dir) / info.name
    x = torch.randn(1, *info.resolved_input_size(settings.input_size), device=device)
    phases = profile_phases(model.to(device), x, trace_dir, settings.steps)
    files = [str(p) for p in trace_files(trace_dir)]
    used = {"batch": 1, "device": device, **implementation_settings(model)}
    return [
        Record(
            model=info.name,
            metric="profile_ms",
            value=ms,
            method=phase,
            settings=used,
            detail={
                "trace_dir": str(trace_dir),
                "trace_files": files,
                "clock": "device" if x.is_cuda else "host",  # see profiling.scope_totals
            },
        )
        for phase, ms in phases.items()
    ]
