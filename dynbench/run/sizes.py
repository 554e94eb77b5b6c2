"""The size measures of suites: parameter counts, MAdds by every counter, weight bytes."""

from __future__ import annotations

import torch
from torch import nn

from dynbench.measure.madds import count_madds
from dynbench.measure.params import count_params
from dynbench.measure.weights import weight_bytes
from dynbench.models.registry import ModelInfo
from dynbench.results.record import CounterDetail, Record
from dynbench.run.settings import MaddsSettings, ResolutionSettings, SizeSettings


def params(info: ModelInfo, model: nn.Module, settings: SizeSettings) -> list[Record]:
    return [
        Record(model=info.name, metric=metric, value=float(value), method="count")
        for metric, value in count_params(model).items()
    ]


def madds(info: ModelInfo, model: nn.Module, settings: MaddsSettings) -> list[Record]:
    """Every chosen counter's MAdds at batch 1, and the weight bytes one image reads."""
    size = info.resolved_input_size(settings.input_size)
    result = count_madds(model, torch.randn(1, *size), tuple(settings.counters))
    common = {"input_size": list(size), "batch": 1}
    records = [
        Record(
            model=info.name,
            metric="madds",
            value=None if total is None else float(total),
            method=counter,
            settings=common,
            detail=CounterDetail(
                skipped_ops=result.skipped.get(counter, {}),
                extra_ops=result.extra.get(counter, {}),
                error=result.errors.get(counter),
                breakdown=result.breakdown if counter == "analytic" else None,
                cheaper_route=result.cheaper_route if counter == "analytic" else None,
                spread=round(result.spread, 6),
                disagree=result.disagree,
            ),
        )
        for counter, total in result.totals.items()
    ]
    read, static = weight_bytes(model)
    records.append(
        Record(
            model=info.name,
            metric="weight_bytes_per_image",
            value=float(read),
            method="analytic",
            settings={"batch": 1},
            detail={
                "static_equivalent_bytes": static,
                "ratio_to_static": round(read / static, 4) if static else None,
            },
        )
    )
    return records


def resolution(info: ModelInfo, model: nn.Module, settings: ResolutionSettings) -> list[Record]:
    """Every chosen counter's MAdds at each of ``input_sizes`` (batch 1): how MAdds scale
    with the input, and the figures papers quote at their own sizes."""
    records = []
    for size in settings.input_sizes:
        result = count_madds(model, torch.randn(1, *size), tuple(settings.counters))
        records += [
            Record(
                model=info.name,
                metric="resolution_madds",
                value=None if total is None else float(total),
                method=counter,
                settings={"input_size": list(size), "batch": 1},
                detail={"error": result.errors[counter]} if counter in result.errors else {},
            )
            for counter, total in result.totals.items()
        ]
    return records
