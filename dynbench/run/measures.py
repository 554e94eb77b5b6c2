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
from dynbench.measure.madds import COUNTERS, count_madds, weight_reads
from dynbench.measure.params import count_params
from dynbench.models.registry import ModelInfo
from dynbench.results.store import Record

MADDS_UNIT = "MAdds"  # multiply-adds, fvcore's unit; torch FLOPs are halved to match


Emit = Callable[[Record], None]
Progress = Callable[[str], None]  # a short status line, e.g. "round 12/300"
# A grouped measure gets a family at once: [(info, model), ...] with the baseline first.
GroupRun = Callable[[list[tuple[ModelInfo, nn.Module]], dict, Emit, Progress], None]


@dataclass
class Measure:
    name: str
    description: str
    run: Callable[[ModelInfo, nn.Module, dict], list[Record]] | None = None
    settings: dict[str, object] = field(default_factory=dict)
    check: Callable[[dict, str], None] | None = None
    run_group: GroupRun | None = None  # families measured interleaved (latency, train-step)
    needs_cuda: bool = False

    @property
    def grouped(self) -> bool:
        return self.run_group is not None

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
    size = info.resolved_input_size(settings.get("input_size"))
    x = torch.randn(1, *size)
    result = count_madds(model, x, counters)
    common = {"input_size": list(size), "batch": 1}
    return [
        Record(
            info.name,
            "madds",
            None if total is None else float(total),
            MADDS_UNIT,
            counter,
            dict(common),
            detail={
                "skipped_ops": result.skipped.get(counter, {}),
                "extra_ops": result.extra.get(counter, {}),
                **({"error": result.errors[counter]} if counter in result.errors else {}),
                **({"breakdown": result.breakdown} if counter == "analytic" else {}),
                "spread": round(result.spread, 6),
                "disagree": result.disagree,
            },
        )
        for counter, total in result.totals.items()
    ]


def with_weight_reads(measure: Callable[[ModelInfo, nn.Module, dict], list[Record]]):
    """Add the bytes of weights one image reads when the analytic method is asked for."""

    def run(info: ModelInfo, model: nn.Module, settings: dict) -> list[Record]:
        records = measure(info, model, settings)
        if "analytic" in settings["counters"]:
            read, static = weight_reads(model)
            bytes_per = next(model.parameters()).element_size() if read else 4
            records.append(
                Record(
                    info.name,
                    "weight_bytes_per_image",
                    float(read * bytes_per),
                    "bytes",
                    "analytic",
                    {"batch": 1},
                    detail={
                        "static_equivalent_bytes": static * bytes_per,
                        "ratio_to_static": round(read / static, 4) if static else None,
                    },
                )
            )
        return records

    return run


def _check_counters(settings: dict, source: str) -> None:
    counters = settings.get("counters", COUNTERS)
    if not isinstance(counters, list) or not counters:
        raise DynbenchError(f"{source}: counters must be a non-empty list; accepted: {COUNTERS}")
    for counter in counters:
        if counter not in COUNTERS:
            raise DynbenchError(
                f"{source}: unknown counter {counter!r}; accepted: {', '.join(COUNTERS)}"
            )


def _positive(*keys: str, integer: bool = False) -> Callable[[dict, str], None]:
    def check(settings: dict, source: str) -> None:
        for key in keys:
            if key not in settings:
                continue
            value = settings[key]
            kinds = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
                kind = "a positive integer" if integer else "a positive number"
                raise DynbenchError(f"{source}: {key} = {value!r} is not {kind}")

    return check


def _all(*checks: Callable[[dict, str], None]) -> Callable[[dict, str], None]:
    def check(settings: dict, source: str) -> None:
        for one in checks:
            one(settings, source)

    return check


def _check_choice(key: str, choices: tuple) -> Callable[[dict, str], None]:
    def check(settings: dict, source: str) -> None:
        if key in settings and settings[key] not in choices:
            raise DynbenchError(
                f"{source}: {key} = {settings[key]!r} is not accepted; accepted: {choices}"
            )

    return check


LATENCY_SETTINGS = {
    "input_size": None,
    "rounds": 150,
    "max_rounds": 400,
    "ci_target": 0.01,
    "min_run_time": 5.0,
    "block_time": 0.02,
    "warmup": 3,
    "noise_threshold": 0.1,
}
THROUGHPUT_SETTINGS = {
    "input_size": None,
    "batch": 200,
    "iterations": 20,
    "warmup": 5,
    "amp": "none",
    "channels_last": False,
    "cudnn_benchmark": True,
}
TRAIN_SETTINGS = {
    "input_size": None,
    "device": "auto",
    "batch": None,
    "rounds": 6,
    "min_run_time": 1.0,
    "block_time": 0.02,
    "warmup": 2,
}
PROFILE_SETTINGS = {"input_size": None, "steps": 3, "trace_dir": "runs/profile", "device": "cpu"}


def _build_measures() -> dict[str, Measure]:
    from dynbench.run import timed_measures as tm

    return {
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
        "latency": Measure(
            "latency",
            "single-thread CPU latency at batch 1, families interleaved",
            settings=LATENCY_SETTINGS,
            run_group=tm.latency_group,
            check=_all(
                _positive("rounds", "max_rounds", "warmup", integer=True),
                _positive("min_run_time", "block_time", "noise_threshold", "ci_target"),
            ),
        ),
        "throughput": Measure(
            "throughput",
            "GPU images/s at a large batch (CUDA events) and peak memory",
            tm.throughput,
            THROUGHPUT_SETTINGS,
            needs_cuda=True,
            check=_all(
                _positive("batch", "iterations", "warmup", integer=True),
                _check_choice("amp", ("none", "fp16", "bf16")),
                _check_choice("channels_last", (True, False)),
                _check_choice("cudnn_benchmark", (True, False)),
            ),
        ),
        "train_step": Measure(
            "train_step",
            "forward + backward + SGD step time per image",
            settings=TRAIN_SETTINGS,
            run_group=tm.train_step_group,
            check=_all(
                _positive("batch", "rounds", "warmup", integer=True),
                _positive("min_run_time", "block_time"),
                _check_choice("device", ("auto", "cpu", "cuda")),
            ),
        ),
        "profile": Measure(
            "profile",
            "torch.profiler trace and time per operator phase",
            tm.profile,
            PROFILE_SETTINGS,
            check=_all(_positive("steps", integer=True), _check_choice("device", ("cpu", "cuda"))),
        ),
    }


MEASURES: dict[str, Measure] = _build_measures()

METRICS = {
    "weight_bytes_per_image": "bytes of weights one image reads at batch 1 (all K kernels)",
    "latency_ms": "median single-thread CPU latency at batch 1 (torch.utils.benchmark)",
    "latency_ratio": "latency / family baseline's, median of the per-round ratios",
    "cpu_images_per_s": "1000 / latency_ms",
    "gpu_images_per_s": "GPU throughput at the suite's batch (CUDA events)",
    "gpu_peak_memory": "torch.cuda.max_memory_allocated during the throughput run",
    "train_step_ms_per_image": "forward + backward + SGD step time / batch",
    "train_step_ratio": "train step time / family baseline's, median of the per-round ratios",
    "profile_ms": "ms per forward in a phase (attention, aggregation, conv, other, forward)",
    "params": "parameters, total",
    "params_trainable": "parameters with requires_grad",
    "params_no_classifier": "parameters without the final classifier (DCD's ResNet convention)",
    "madds": "multiply-adds at batch 1; method = fvcore | ptflops | torch | conv_linear",
}
