"""The timing measures of suites: latency, train-step, throughput and profile.

Latency and train-step time a whole family (baseline first) interleaved, so that
each variant's ratio to its baseline comes from samples taken side by side; see
:mod:`dynbench.measure.timing`. Each timing record says which implementation of
the operators ran (``settings.impl``, and per layer in ``detail.implementations``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from dynbench.measure.allocator import allocator, pin
from dynbench.measure.environment import cpu_mhz
from dynbench.measure.gpu import cuda_event_timer, measure_throughput, wall_clock_timer
from dynbench.measure.profiling import profile_phases, trace_files
from dynbench.measure.timing import (
    Interleaved,
    Timed,
    inference_call,
    interleaved,
    load_average,
    ratio_with_ci,
    set_threads,
    train_step_call,
)
from dynbench.models.registry import ModelInfo
from dynbench.ops.base import implementations
from dynbench.ops.experts_route import RouteSetting
from dynbench.ops.kernel_mixing import set_route_setting
from dynbench.results.record import RatioDetail, Record, RoundsDetail, TimingDetail, error_record
from dynbench.run.family import Emit, Member, Progress
from dynbench.run.options import DTYPES, Prepared, compiled_if_asked, convert, prepare

METHOD = "torch.utils.benchmark"


def implementation_settings(model: nn.Module) -> dict[str, str]:
    """``{"impl": ...}``: the implementations the operators ran in the last call
    (``static`` for a model without dynamic operators)."""
    return {"impl": ",".join(implementations(model)) or "static"}


def ratio_record(
    model: str,
    metric: str,
    variant: Timed,
    baseline: Timed,
    settings: dict,
    rounds: RoundsDetail,
    baseline_name: str,
) -> Record:
    """``variant``'s median per-round ratio to ``baseline`` with its 95% interval."""
    ratio, low, high = ratio_with_ci(variant, baseline)
    detail = RatioDetail(
        **vars(rounds), baseline=baseline_name, ci95_low=_finite(low), ci95_high=_finite(high)
    )
    return Record(
        model=model, metric=metric, value=ratio, method=METHOD, settings=settings, detail=detail
    )


def _ratio_records(
    metric: str, results: Interleaved, members: list[Member], rounds: RoundsDetail, settings: dict
) -> list[Record]:
    baseline = members[0][0].name
    return [
        ratio_record(
            info.name,
            metric,
            results.timed[info.name],
            results.timed[baseline],
            {**settings, **implementation_settings(model)},
            rounds,
            baseline,
        )
        for info, model in members[1:]
    ]


def inference_detail(
    timed: Timed,
    rounds: RoundsDetail,
    settings: dict,
    implementations: dict[str, int] | None = None,
) -> TimingDetail:
    """One model's inference rounds: spread, page faults, and whether either makes it noisy."""
    noise = timed.iqr / timed.median
    faulting = timed.faults_per_call[0] > settings["fault_threshold"]
    return TimingDetail(
        **vars(rounds),
        iqr_ms=round(timed.iqr * 1e3, 4),
        iqr_over_median=round(noise, 4),
        noisy=noise > settings["noise_threshold"] or faulting,
        round_ms=[round(t * 1e3, 3) for t in timed.times],
        implementations=implementations,
        **_faults(timed),
    )


def _faults(timed: Timed) -> dict[str, float]:
    minor, major = timed.faults_per_call
    return {"minor_faults_per_call": round(minor, 2), "major_faults_per_call": round(major, 2)}


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 5)


def _widest_ci(timed: dict[str, Timed], baseline: str) -> float:
    """The largest 95% CI half-width of the ratios to ``baseline``, relative to the ratio."""
    widths = [0.0]
    for name, variant in timed.items():
        if name != baseline:
            ratio, low, high = ratio_with_ci(variant, timed[baseline])
            widths.append(math.inf if math.isnan(low) else (high - low) / 2 / ratio)
    return max(widths)


def measure_interleaved(
    calls: dict,
    settings: dict,
    progress: Progress,
    models: Iterable[nn.Module] = (),
    **where: object,
) -> tuple[Interleaved, RoundsDetail]:
    """Run the rounds with progress; the returned detail says how they went.

    The allocator the settings ask for is put in force first, and the ``models`` the calls
    run are told what is in force (their kernel-mixing convs route by it).

    A Ctrl-C after at least 2 complete rounds returns them (``interrupted``) for the
    caller to store; one earlier stops here, before any median of nothing is taken.

    With a ``ci_target`` setting, rounds go on past ``rounds`` (up to
    ``max_rounds``) until every ratio's 95% CI half-width is within it.
    """
    baseline = next(iter(calls))
    target = settings.get("ci_target")
    status = {"ci": ""}

    def precise_enough(timed: dict[str, Timed]) -> bool:
        width = _widest_ci(timed, baseline)
        status["ci"] = f", widest CI ±{width:.1%} (target ±{target:.1%})"
        return width <= target

    def on_round(done: int, expected: int) -> None:
        if status["ci"]:  # past the minimum rounds, going on until the CIs are narrow
            progress(f"round {done} of at most {settings['max_rounds']}{status['ci']}")
        else:
            progress(f"round {done}/{expected}")

    in_force = pin() if settings.get("allocator") == "pinned" else allocator()
    routes = RouteSetting(memory_kept=in_force == "pinned")
    for model in models:
        set_route_setting(model, routes)
    load_before, mhz_before = load_average(), cpu_mhz()
    results = interleaved(
        calls,
        settings["rounds"],
        settings["min_run_time"],
        settings["warmup"],
        block_time=settings["block_time"],
        on_round=on_round,
        precise_enough=precise_enough if target is not None else None,
        max_rounds=settings.get("max_rounds"),
    )
    if results.interrupted and results.rounds < 2:
        raise KeyboardInterrupt  # too little to keep: no median or ratio worth storing
    widest = round(_widest_ci(results.timed, baseline), 5) if target is not None else None
    rounds = RoundsDetail(
        load_before=load_before,
        load_after=load_average(),
        cpu_mhz_before=mhz_before,
        cpu_mhz_after=cpu_mhz(),
        rounds=results.rounds,
        interrupted=results.interrupted,
        widest_ci=widest,
        allocator=in_force,
        **where,
    )
    return results, rounds


def _emit_or_stop(results: Interleaved, records: list[Record], emit: Emit) -> None:
    """Store what was measured; after a Ctrl-C, stop the run there."""
    for record in records:
        emit(record)
    if results.interrupted:
        raise KeyboardInterrupt


def latency(members: list[Member], settings: dict, emit: Emit, progress: Progress) -> None:
    threads = set_threads(settings["threads"])
    prepared = _prepared(members, settings, emit)
    if prepared is None:
        return
    members = [(info, model) for info, model in members if info.name in prepared]
    calls = {name: inference_call(p.model, p.x) for name, p in prepared.items()}
    models = [p.model for p in prepared.values()]
    results, rounds = measure_interleaved(calls, settings, progress, models, **threads)
    common = {"batch": 1}
    records = []
    for info, model in members:
        timed = results.timed[info.name]
        used = {**common, **implementation_settings(model)}
        detail = dataclasses.replace(
            inference_detail(timed, rounds, settings, implementations(model)),
            compile_s=prepared[info.name].compile_s,
        )
        records.append(
            Record(
                model=info.name,
                metric="latency_ms",
                value=timed.median * 1e3,
                method=METHOD,
                settings=used,
                detail=detail,
            )
        )
        records.append(
            Record(
                model=info.name,
                metric="cpu_images_per_s",
                value=1.0 / timed.median,
                method=METHOD,
                settings=used,
            )
        )
    records += _ratio_records("latency_ratio", results, members, rounds, common)
    _emit_or_stop(results, records, emit)


def _prepared(members: list[Member], settings: dict, emit: Emit) -> dict[str, Prepared] | None:
    """Each member in the suite's dtype and layout, compiled if asked; one that fails gets
    an error record and the family goes on without it, unless it is the baseline: then no
    ratio can be taken, every member says so and the family is not timed (None)."""
    stage = "compile" if settings.get("compile") else "latency"
    prepared: dict[str, Prepared] = {}
    for info, model in members:
        x = torch.randn(1, *info.resolved_input_size(settings.get("input_size")))
        try:
            prepared[info.name] = prepare(model, x, settings)
        except Exception as exc:  # the compiler's (or the dtype's) limit, not the run's
            emit(error_record(info.name, stage, exc))
    return prepared if _baseline_ready(members, prepared, stage, emit) else None


def _baseline_ready(members: list[Member], ready: dict, stage: str, emit: Emit) -> bool:
    """Whether the family's baseline is among the ``ready`` members; if not, no ratio can be
    taken and every ready member gets an error record saying so."""
    baseline = members[0][0].name
    if baseline in ready:
        return True
    reason = RuntimeError(f"the family's baseline {baseline} failed ({stage}): no ratio")
    for name in ready:
        emit(error_record(name, stage, reason))
    return False


def train_step(members: list[Member], settings: dict, emit: Emit, progress: Progress) -> None:
    device = settings["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = settings["batch"] or (128 if device == "cuda" else 8)
    calls, compile_s = {}, {}
    stage = "compile" if settings.get("compile") else "train_step"
    for info, model in members:
        try:
            model, dtype, layout = convert(model.to(device), settings)
            size = info.resolved_input_size(settings.get("input_size"))
            with torch.device(device):
                step = train_step_call(
                    compiled_if_asked(model, settings), batch, size, dtype, layout
                )
            if settings.get("compile"):  # the first step compiles: a one-off, timed apart
                start = time.perf_counter()
                step()
                compile_s[info.name] = round(time.perf_counter() - start, 3)
            calls[info.name] = step
        except Exception as exc:  # the compiler's (or the dtype's) limit, not the run's
            emit(error_record(info.name, stage, exc))
            model.to("cpu")
    if not _baseline_ready(members, calls, stage, emit):
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
                    **_faults(timed),
                ),
            )
        )
        model.to("cpu")
    records += _ratio_records("train_step_ratio", results, members, rounds, common)
    _emit_or_stop(results, records, emit)


def throughput(info: ModelInfo, model: nn.Module, settings: dict) -> list[Record]:
    """Images/s and peak memory of one model on the suite's device (CUDA events; a CPU
    device, which the suite never picks, is timed by the wall clock so that the record
    this builds can be checked without a GPU)."""
    torch.backends.cudnn.benchmark = bool(settings["cudnn_benchmark"])
    amp = None if settings["amp"] == "none" else settings["amp"]
    cuda = settings["device"].startswith("cuda")
    result = measure_throughput(
        model,
        info.resolved_input_size(settings.get("input_size")),
        settings["batch"],
        settings["iterations"],
        settings["warmup"],
        amp=amp,
        channels_last=settings["channels_last"],
        dtype=DTYPES[settings["dtype"]],
        compile_mode=settings["compile_mode"] if settings["compile"] else None,
        repeats=settings["repeats"],
        device=settings["device"],
        timer=cuda_event_timer if cuda else wall_clock_timer,
        steady_tolerance=settings["steady_tolerance"],
        max_warmup_blocks=settings["max_warmup_blocks"],
        reserve_bytes=int(settings["memory_reserve_gib"] * 2**30),
    )
    used = {
        "batch": settings["batch"],
        "amp": settings["amp"],
        "dtype": settings["dtype"],
        "channels_last": settings["channels_last"],
        "compile": settings["compile"],
        **implementation_settings(model),
    }
    detail = {
        "gpu": torch.cuda.get_device_name(0) if cuda else settings["device"],
        "memory_reserve_gib": settings["memory_reserve_gib"],
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


def profile(info: ModelInfo, model: nn.Module, settings: dict) -> list[Record]:
    device = settings["device"]
    trace_dir = Path(settings["trace_dir"]) / info.name
    x = torch.randn(1, *info.resolved_input_size(settings.get("input_size")), device=device)
    phases = profile_phases(model.to(device), x, trace_dir, settings["steps"])
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
