"""The sparsity measure: a spatial DynConv model at chosen mask densities, three ways.

For every mask source and density: the conditional MAdds of the masks (methods
``dynconv``, ``conv_linear`` and ``executed``, see :mod:`dynbench.measure.conditional`),
and the single-thread batch-1 CPU latency of the ``dense``, ``masked`` and ``sparse``
executions of the same model, timed interleaved round by round as the latency suite does,
each as a ratio to ``dense`` with its 95% interval; and, when a CUDA device is present
(setting ``gpu`` ``auto``), the batch-``gpu_batch`` GPU throughput of the three, in the
run's dtype and layout and compiled when the run compiles, as the CPU timings are. The
sparse execution runs at the suite's ``granularity`` (``auto``: each block at whichever of
pixel and S x S tiles, S = ``tile``, its own short timing finds faster; the conditional
MAdds records' detail says what each block chose). No trained masks exist here: these are
speed measurements at controlled densities, not accuracy claims.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dynbench.measure.conditional import conditional_madds
from dynbench.measure.gpu import cuda_event_timer, measure_throughput
from dynbench.measure.timing import inference_call, set_threads
from dynbench.models.masked_blocks import (
    set_execution,
    set_granularity,
    set_mask_source,
    spatial_blocks,
)
from dynbench.ops.dynconv import MaskSource
from dynbench.results.names import EXECUTIONS
from dynbench.results.record import Record, error_record
from dynbench.run.family import Emit, Member, Progress
from dynbench.run.options import DTYPES, Prepared, prepare
from dynbench.run.rounds import latency_record, measure_interleaved, ratio_record


def _executions(model: nn.Module, prepared: Prepared) -> dict[str, object]:
    """One callable per execution, each switching ``model`` (the module behind the prepared,
    perhaps compiled, callable) to it before the call."""

    def run(execution: str):
        call = inference_call(prepared.model, prepared.x)

        def switched() -> object:
            set_execution(model, execution)
            return call()

        return switched

    return {execution: run(execution) for execution in EXECUTIONS}


def _implementation(model: nn.Module) -> str:
    """What the spatial blocks ran in the last forward, e.g. ``sparse/pixel,sparse/tile``."""
    return ",".join(sorted({b.implementation for b in spatial_blocks(model)}))


def _products(model: nn.Module) -> dict[str, int] | None:
    """The last forward's GEMMs by library over the spatial blocks, e.g. ``{"gemm/onednn":
    40, "gemm/addmm": 8}``; None where no block ran one."""
    total: dict[str, int] = {}
    for block in spatial_blocks(model):
        for library, count in block.products().items():
            total[f"gemm/{library}"] = total.get(f"gemm/{library}", 0) + count
    return total or None


def _where(source: MaskSource, settings: dict, batch: int) -> dict:
    granularity = {"granularity": settings.granularity, "tile": settings.tile}
    return {"density": source.density, "mask": source.kind, "batch": batch, **granularity}


def gpu_throughput(
    info,
    model: nn.Module,
    source: MaskSource,
    settings: dict,
    device: str = "cuda",
    timer: Callable[[Callable[[], object], int], float] = cuda_event_timer,
    batch: int | None = None,
) -> list[Record]:
    """Images per second of each execution at ``batch`` (default ``gpu_batch``) on
    ``device``, with the run's dtype, channels-last and compile settings (the records are
    stamped with them), warmed until steady and timed in ``gpu_repeats`` blocks as the
    throughput measure is. Under ``auto`` granularity each block chooses afresh at this
    batch on this device (a choice made at another batch or on the CPU does not carry)."""
    batch = batch or settings.gpu_batch
    where = _where(source, settings, batch)
    size = info.resolved_input_size(settings.input_size)
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else device
    set_granularity(model, settings.granularity, settings.tile)
    records = []
    for execution in EXECUTIONS:
        set_execution(model, execution)
        result = measure_throughput(
            model,
            size,
            batch,
            settings.gpu_iterations,
            settings.gpu_warmup,
            channels_last=settings.channels_last,
            device=device,
            timer=timer,
            dtype=DTYPES[settings.dtype],
            compile_mode=settings.compile_mode if settings.compile else None,
            repeats=settings.gpu_repeats,
            max_warmup_blocks=settings.gpu_warmup_blocks,
        )
        per_call = None if result.oom else round(result.milliseconds / settings.gpu_iterations, 4)
        records.append(
            Record(
                model=info.name,
                metric="spatial_gpu_images_per_s",
                value=result.images_per_s,
                method="cuda_events" if device.startswith("cuda") else "timer",
                settings={**where, "execution": execution, "impl": _implementation(model)},
                detail={
                    "gpu": gpu,
                    "peak_memory_bytes": result.peak_memory_bytes,
                    "ms_per_call": per_call,
                    **result.detail(),
                },
            )
        )
    return records


def _point(
    info, model: nn.Module, prepared: Prepared, source: MaskSource, settings: dict, progress
) -> tuple[list[Record], bool]:
    """Every record of one (mask source, density); and whether Ctrl-C cut it short."""
    where = _where(source, settings, 1)
    x = prepared.x
    set_mask_source(model, source)
    set_execution(model, "sparse")  # executed MAdds: what the sparse execution computes
    madds, blocks = conditional_madds(model, x)
    records = [
        Record(
            model=info.name,
            metric="conditional_madds",
            value=float(value),
            method=method,
            settings=where,
            detail={"blocks": blocks},
        )
        for method, value in madds.items()
    ]
    if not settings.cpu_latency:  # a GPU-only run (suites/sparsity-gpu.toml)
        return records, False
    calls = _executions(model, prepared)
    results, rounds = measure_interleaved(
        calls, settings, lambda s: progress(f"{source.kind} d={source.density}: {s}"),
        [prepared.model], **set_threads(settings.threads),
    )  # fmt: skip
    ran, products = {}, {}
    for execution in EXECUTIONS:
        set_execution(model, execution)
        with torch.inference_mode():
            model(x)
        ran[execution] = _implementation(model)
        products[execution] = _products(model)
    for execution in EXECUTIONS:
        timed = results.timed[execution]
        used = {**where, "execution": execution, "impl": ran[execution]}
        records.append(
            latency_record(
                info.name,
                "spatial_latency_ms",
                timed,
                rounds,
                settings,
                used,
                prepared.compile_s,
                implementations=products[execution],
            )
        )
        if execution != "dense":
            dense = results.timed["dense"]
            name = f"{info.name} (dense)"
            records.append(
                ratio_record(info.name, "spatial_latency_ratio", timed, dense, used, rounds, name)
            )
    return records, results.interrupted


def _gpu_batches(settings: dict) -> list[int]:
    """``gpu_batch``, then ``gpu_latency_batch`` where one is set (0: none)."""
    latency = settings.gpu_latency_batch
    return [settings.gpu_batch, *([latency] if latency else [])]


def sparsity(members: list[Member], settings: dict, emit: Emit, progress: Progress) -> None:
    """Each member with spatial blocks (a family's static baseline has none: skipped)."""
    for info, model in members:
        if not any(True for _ in spatial_blocks(model)):
            continue
        size = info.resolved_input_size(settings.input_size)
        set_granularity(model, settings.granularity, settings.tile)
        try:
            prepared = prepare(model, torch.randn(1, *size), settings)
        except Exception as exc:  # the compiler's (or the dtype's) limit, not the run's
            emit(error_record(info.name, "compile" if settings.compile else "sparsity", exc))
            continue
        gpu = settings.gpu == "auto" and torch.cuda.is_available()
        for kind in settings.masks:
            for density in settings.densities:
                source = MaskSource(kind, float(density), settings.seed, settings.patch)
                records, interrupted = _point(info, model, prepared, source, settings, progress)
                if gpu and not interrupted:
                    for batch in _gpu_batches(settings):
                        progress(f"{kind} d={density}: GPU batch {batch}")
                        records += gpu_throughput(info, model, source, settings, batch=batch)
                for record in records:
                    emit(record)
                if interrupted:
                    raise KeyboardInterrupt
        set_execution(model, "masked")
