"""What a suite can measure: each measure turns one built model into records.

A measure declares the settings it understands (with defaults) and validates
their values, so a suite file is checked before anything runs. Metric names
are stable; README's "Metrics" section lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from dynbench.errors import DynbenchError
from dynbench.measure.madds import COUNTERS, count_madds
from dynbench.measure.params import count_params
from dynbench.models.registry import ModelInfo
from dynbench.results.store import Record

MADDS_UNIT = "MAdds"  # multiply-adds, fvcore's unit; torch FLOPs are halved to match


@dataclass
class Measure:
    name: str
    description: str
    run: Callable[[ModelInfo, nn.Module, dict], list[Record]]
    settings: dict[str, object] = field(default_factory=dict)
    check: Callable[[dict, str], None] | None = None

    def validate(self, settings: dict, source: str) -> None:
        if "input_size" in settings:
            check_input_size(settings["input_size"], source)
        if self.check:
            self.check(settings, source)

    def resolved(self, settings: dict) -> dict:
        """This measure's settings: the suite's values over the defaults."""
        return {k: settings.get(k, v) for k, v in self.settings.items()}


def check_input_size(value: object, source: str) -> tuple[int, int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise DynbenchError(
            f"{source}: input_size {value!r} is not three positive integers; use [C, H, W] "
            "such as [3, 224, 224]"
        )
    return tuple(value)  # type: ignore[return-value]


def measure_params(info: ModelInfo, model: nn.Module, settings: dict) -> list[Record]:
    return [
        Record(info.name, metric, float(value), "params", "count")
        for metric, value in count_params(model).items()
    ]


def measure_madds(info: ModelInfo, model: nn.Module, settings: dict) -> list[Record]:
    counters = tuple(settings["counters"])
    size = tuple(settings.get("input_size") or info.input_size)
    x = torch.randn(1, *size)
    result = count_madds(model, x, counters)
    common = {"input_size": list(size), "batch": 1}
    return [
        Record(
            info.name,
            "madds",
            float(total),
            MADDS_UNIT,
            counter,
            dict(common),
            detail={
                "skipped_ops": result.skipped.get(counter, {}),
                "extra_ops": result.extra.get(counter, {}),
                **({"breakdown": result.breakdown} if counter == "analytic" else {}),
                "spread": round(result.spread, 6),
                "disagree": result.disagree,
            },
        )
        for counter, total in result.totals.items()
    ]


def _check_counters(settings: dict, source: str) -> None:
    counters = settings.get("counters", COUNTERS)
    if not isinstance(counters, list) or not counters:
        raise DynbenchError(f"{source}: counters must be a non-empty list; accepted: {COUNTERS}")
    for counter in counters:
        if counter not in COUNTERS:
            raise DynbenchError(
                f"{source}: unknown counter {counter!r}; accepted: {', '.join(COUNTERS)}"
            )


MEASURES: dict[str, Measure] = {
    "params": Measure(
        "params",
        "parameter counts (total, trainable, without classifier)",
        measure_params,
        {"input_size": None},
    ),
    "madds": Measure(
        "madds",
        "multiply-adds at batch 1 by each counter",
        measure_madds,
        {"input_size": None, "counters": list(COUNTERS)},
        _check_counters,
    ),
}

METRICS = {
    "params": "parameters, total",
    "params_trainable": "parameters with requires_grad",
    "params_no_classifier": "parameters without the final classifier (DCD's ResNet convention)",
    "madds": "multiply-adds at batch 1; method = fvcore | ptflops | torch | conv_linear",
}
