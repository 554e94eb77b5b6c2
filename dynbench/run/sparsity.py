"""The sparsity measure: a spatial DynConv model at chosen mask densities, three ways.

For every mask source and density: the conditional MAdds of the masks (methods
``dynconv`` and ``conv_linear``, see :mod:`dynbench.measure.conditional`), and the
single-thread batch-1 CPU latency of the ``dense``, ``masked`` and ``sparse`` executions
of the same model, timed interleaved round by round as the latency suite does, each as a
ratio to ``dense`` with its 95% interval. No trained masks exist here: these are speed
measurements at controlled densities, not accuracy claims.
"""

from __future__ import annotations

import torch
from torch import nn

from dynbench.measure.conditional import conditional_madds
from dynbench.measure.timing import inference_call, set_threads
from dynbench.models.spatial import set_execution, set_mask_source, spatial_blocks
from dynbench.ops.dynconv import EXECUTIONS, MaskSource
from dynbench.results.record import Record
from dynbench.run.family import Emit, Member, Progress
from dynbench.run.timed import METHOD, inference_detail, measure_interleaved, ratio_record


def _executions(model: nn.Module, x: torch.Tensor) -> dict[str, object]:
    """One callable per execution, each switching the model to it before the call."""

    def run(execution: str):
        call = inference_call(model, x)

        def switched() -> object:
            set_execution(model, execution)
            return call()

        return switched

    return {execution: run(execution) for execution in EXECUTIONS}


def _point(
    info, model: nn.Module, x: torch.Tensor, source: MaskSource, settings: dict, progress
) -> tuple[list[Record], bool]:
    """Every record of one (mask source, density); and whether Ctrl-C cut it short."""
    where = {"density": source.density, "mask": source.kind, "batch": 1}
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
    calls = _executions(model, x)
    results, rounds = measure_interleaved(
        calls, settings, lambda s: progress(f"{source.kind} d={source.density}: {s}"),
        **set_threads(),
    )  # fmt: skip
    ran = {}
    for execution in EXECUTIONS:
        set_execution(model, execution)
        with torch.inference_mode():
            model(x)
        ran[execution] = sorted({b.ran for b in spatial_blocks(model)})
    for execution in EXECUTIONS:
        timed = results.timed[execution]
        used = {**where, "execution": execution, "impl": ",".join(ran[execution])}
        records.append(
            Record(
                model=info.name,
                metric="spatial_latency_ms",
                value=timed.median * 1e3,
                method=METHOD,
                settings=used,
                detail=inference_detail(timed, rounds, settings),
            )
        )
        if execution != "dense":
            dense = results.timed["dense"]
            name = f"{info.name} (dense)"
            records.append(
                ratio_record(info.name, "spatial_latency_ratio", timed, dense, used, rounds, name)
            )
    return records, results.interrupted


def sparsity(members: list[Member], settings: dict, emit: Emit, progress: Progress) -> None:
    """Each member with spatial blocks (a family's static baseline has none: skipped)."""
    for info, model in members:
        if not any(True for _ in spatial_blocks(model)):
            continue
        size = info.resolved_input_size(settings.get("input_size"))
        x = torch.randn(1, *size)
        for kind in settings["masks"]:
            for density in settings["densities"]:
                source = MaskSource(kind, float(density), settings["seed"], settings["patch"])
                records, interrupted = _point(info, model, x, source, settings, progress)
                for record in records:
                    emit(record)
                if interrupted:
                    raise KeyboardInterrupt
        set_execution(model, "masked")
