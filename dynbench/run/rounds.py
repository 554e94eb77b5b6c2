"""Interleaved rounds and the records they make, for every step that times a family.

:func:`measure_interleaved` runs the rounds (see :mod:`dynbench.measure.timing`) until
enough, or until every ratio's interval is narrow enough; :func:`latency_record` and
:func:`ratio_record` make a member's median time and its ratio to the baseline, the one
way the latency, batch-sweep and sparsity steps all store them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from torch import nn

from dynbench.measure.allocator import allocator, pin
from dynbench.measure.environment import cpu_mhz
from dynbench.measure.timing import Interleaved, Timed, interleaved, load_average, ratio_with_ci
from dynbench.ops.base import implementations
from dynbench.ops.experts_route import RouteSetting
from dynbench.ops.kernel_mixing import set_route_setting
from dynbench.results.record import RatioDetail, Record, RoundsDetail, TimingDetail, error_record
from dynbench.run.family import Emit, Member, Progress
from dynbench.run.options import Prepared
from dynbench.run.settings import RoundsSettings, TrainSettings

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


def ratio_records(
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
    settings: RoundsSettings,
    implementations: dict[str, int] | None = None,
) -> TimingDetail:
    """One model's inference rounds: spread, page faults, and whether either makes it noisy."""
    noise = timed.iqr / timed.median
    faulting = timed.faults_per_call[0] > settings.fault_threshold
    return TimingDetail(
        **vars(rounds),
        iqr_ms=round(timed.iqr * 1e3, 4),
        iqr_over_median=round(noise, 4),
        noisy=noise > settings.noise_threshold or faulting,
        round_ms=[round(t * 1e3, 3) for t in timed.times],
        implementations=implementations,
        **faults(timed),
    )


def latency_record(
    model: str,
    metric: str,
    timed: Timed,
    rounds: RoundsDetail,
    settings: RoundsSettings,
    used: dict,
    compile_s: float | None,
    implementations: dict[str, int] | None = None,
    per_image: int | None = None,
) -> Record:
    """One model's median time of its rounds, in ms, with their detail; with ``per_image``
    (the batch) the median, the IQR and every round are divided by it."""
    detail = inference_detail(timed, rounds, settings, implementations)
    value = timed.median * 1e3
    if per_image is not None:
        value /= per_image
        detail = dataclasses.replace(
            detail,
            iqr_ms=round(timed.iqr * 1e3 / per_image, 5),
            round_ms=[round(t * 1e3 / per_image, 4) for t in timed.times],
        )
    detail = dataclasses.replace(detail, compile_s=compile_s)
    return Record(
        model=model, metric=metric, value=value, method=METHOD, settings=used, detail=detail
    )


def latency_records(
    metric: str,
    members: list[Member],
    results: Interleaved,
    rounds: RoundsDetail,
    settings: RoundsSettings,
    prepared: dict[str, Prepared],
    common: dict,
    per_image: int | None = None,
) -> list[Record]:
    """Each member's :func:`latency_record`, stamped with ``common`` and the implementations
    its operators ran."""
    return [
        latency_record(
            info.name,
            metric,
            results.timed[info.name],
            rounds,
            settings,
            {**common, **implementation_settings(model)},
            prepared[info.name].compile_s,
            implementations(model),
            per_image,
        )
        for info, model in members
    ]


def faults(timed: Timed) -> dict[str, float]:
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
    settings: RoundsSettings | TrainSettings,
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
    target = getattr(settings, "ci_target", None)  # training steps have none
    status = {"ci": ""}

    def precise_enough(timed: dict[str, Timed]) -> bool:
        width = _widest_ci(timed, baseline)
        status["ci"] = f", widest CI ±{width:.1%} (target ±{target:.1%})"
        return width <= target

    def on_round(done: int, expected: int) -> None:
        if status["ci"]:  # past the minimum rounds, going on until the CIs are narrow
            progress(f"round {done} of at most {settings.max_rounds}{status['ci']}")
        else:
            progress(f"round {done}/{expected}")

    in_force = pin() if settings.allocator == "pinned" else allocator()
    routes = RouteSetting(memory_kept=in_force == "pinned")
    for model in models:
        set_route_setting(model, routes)
    load_before, mhz_before = load_average(), cpu_mhz()
    results = interleaved(
        calls,
        settings.rounds,
        settings.min_run_time,
        settings.warmup,
        block_time=settings.block_time,
        on_round=on_round,
        precise_enough=precise_enough if target is not None else None,
        max_rounds=getattr(settings, "max_rounds", None),
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


def emit_or_stop(results: Interleaved, records: list[Record], emit: Emit) -> None:
    """Store what was measured; after a Ctrl-C, stop the run there."""
    for record in records:
        emit(record)
    if results.interrupted:
        raise KeyboardInterrupt


def baseline_ready(members: list[Member], ready: dict, stage: str, emit: Emit) -> bool:
    """Whether the family's baseline is among the ``ready`` members; if not, no ratio can be
    taken and every ready member gets an error record saying so."""
    baseline = members[0][0].name
    if baseline in ready:
        return True
    reason = RuntimeError(f"the family's baseline {baseline} failed ({stage}): no ratio")
    for name in ready:
        emit(error_record(name, stage, reason))
    return False
