"""The steps a suite can name under ``measures``: each turns built models into records.

A step is one of three kinds, by what the runner hands it: a :class:`ModelStep` one
model at a time, a :class:`FamilyStep` a whole family at once (baseline first, see
:mod:`dynbench.run.family`), a :class:`MachineStep` nothing but the machine, once per run.
Each declares the settings it understands as a frozen dataclass
(:mod:`dynbench.run.settings`) and checks a suite's values for them, so a suite file is
checked before anything runs. The instruments the steps use live in
:mod:`dynbench.measure`; metric names in :mod:`dynbench.results.names`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from dynbench.errors import DynbenchError
from dynbench.measure.allocator import ALLOCATORS
from dynbench.measure.environment import all_cores
from dynbench.measure.madds import MADDS_COUNTERS
from dynbench.models.registry import ModelInfo
from dynbench.ops.dynconv import GRANULARITIES, MASK_SOURCES
from dynbench.results.record import Record
from dynbench.run import batch_sweep, ceilings_and_layers, sizes, sparsity, timed
from dynbench.run.family import Emit, Member, Progress
from dynbench.run.options import check_options
from dynbench.run.settings import (
    BatchSweepSettings,
    LatencySettings,
    MachineSettings,
    MaddsSettings,
    ProfileSettings,
    ResolutionSettings,
    SizeSettings,
    SparsitySettings,
    StepSettings,
    ThroughputSettings,
    TrainSettings,
)

Check = Callable[[dict, str], None]


@dataclass(frozen=True, kw_only=True)
class Step:
    """What every kind of step has: the function that runs it (whose name is the step's, as
    a suite names it), a line for ``dynbench suites``, its settings' type and their check,
    and three facts the runner plans by."""

    run: Callable[..., Any]
    description: str
    settings: type[StepSettings]
    check: Check | None = None
    needs_cuda: bool = False
    untimed: bool = False  # times nothing: may run on every core at once (run.pool)
    zero_weights: bool = False  # reads no weight's value: models built with zero weights

    @property
    def name(self) -> str:
        return self.run.__name__

    def validate(self, settings: dict, source: str) -> None:
        if "input_size" in settings:
            check_input_size(settings["input_size"], source)
        if self.check:
            self.check(settings, source)


@dataclass(frozen=True, kw_only=True)
class ModelStep(Step):
    """Run on each model in turn; a model whose step raises gets an error record and the
    others are still measured."""

    run: Callable[[ModelInfo, nn.Module, Any], list[Record]]


@dataclass(frozen=True, kw_only=True)
class FamilyStep(Step):
    """Run on a whole family at once; one error fails the family's every member."""

    run: Callable[[list[Member], Any, Emit, Progress], None]
    # ratios to the family's baseline: models grouped by family, the baseline kept
    ratios: bool = True


@dataclass(frozen=True, kw_only=True)
class MachineStep(Step):
    """Measures the machine, not models: once per run, before any model."""

    run: Callable[[Any, Emit, Progress], None]


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


def _check_sparsity(settings: dict, source: str) -> None:
    densities = settings.get("densities", [0.0])
    if (
        not isinstance(densities, list)
        or not densities
        or not all(
            isinstance(d, (int, float)) and not isinstance(d, bool) and 0 <= d <= 1
            for d in densities
        )
    ):
        raise DynbenchError(
            f"{source}: densities {densities!r} must be a list of numbers in [0, 1] "
            "(true and false are not numbers here)"
        )
    masks = settings.get("masks", ["random"])
    if not isinstance(masks, list) or not masks or any(m not in MASK_SOURCES for m in masks):
        raise DynbenchError(
            f"{source}: masks {masks!r} is not a list of mask sources; accepted: "
            f"{', '.join(MASK_SOURCES)}"
        )


def _check_input_sizes(settings: dict, source: str) -> None:
    sizes = settings.get("input_sizes", [[3, 224, 224]])
    if not isinstance(sizes, list) or not sizes:
        raise DynbenchError(f"{source}: input_sizes must be a non-empty list of [C, H, W]")
    for size in sizes:
        check_input_size(size, source)


def _check_counters(settings: dict, source: str) -> None:
    known = tuple(MADDS_COUNTERS)  # the table, read now: a counter registered since counts
    counters = settings.get("counters", list(known))
    if not isinstance(counters, list) or not counters:
        raise DynbenchError(f"{source}: counters must be a non-empty list; accepted: {known}")
    for counter in counters:
        if counter not in known:
            raise DynbenchError(
                f"{source}: unknown counter {counter!r}; accepted: {', '.join(known)}"
            )


def _positive(*keys: str, integer: bool = False) -> Check:
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


def _threads_within_cores(settings: dict, source: str) -> None:
    """More threads than cores time the scheduler, not the model: refused."""
    threads, cores = settings.get("threads"), all_cores()
    if isinstance(threads, int) and not isinstance(threads, bool) and threads > cores:
        raise DynbenchError(
            f"{source}: threads = {threads} is more than the {cores} cores this process may "
            f"run on; accepted: 1 to {cores}"
        )


def _at_least_zero(*keys: str, integer: bool = False) -> Check:
    def check(settings: dict, source: str) -> None:
        for key in keys:
            value = settings.get(key, 0)
            kinds = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
                kind = "an integer" if integer else "a number"
                raise DynbenchError(f"{source}: {key} = {value!r} is not {kind} >= 0")

    return check


def _all(*checks: Check) -> Check:
    def check(settings: dict, source: str) -> None:
        for one in checks:
            one(settings, source)

    return check


def _check_choice(key: str, choices: tuple) -> Check:
    def check(settings: dict, source: str) -> None:
        if key in settings and settings[key] not in choices:
            raise DynbenchError(
                f"{source}: {key} = {settings[key]!r} is not accepted; accepted: {choices}"
            )

    return check


def _rounds_checks(*integers: str) -> list[Check]:
    """The checks of interleaved rounds (latency, batch sweep, sparsity): ``integers``
    positive, threads within the cores, the run options, the allocator, the timing's
    positive numbers."""
    return [
        _positive(*integers, integer=True),
        _threads_within_cores,
        check_options,
        _check_choice("allocator", ALLOCATORS),
        _positive("min_run_time", "block_time", "noise_threshold", "ci_target", "fault_threshold"),
    ]


def _size_step(
    run_one: Callable, description: str, settings: type[StepSettings], check: Check | None = None
) -> ModelStep:
    """A step of sizes: one model at a time, times nothing, reads no
    weight's value."""
    return ModelStep(
        run=run_one, description=description, settings=settings,
        check=check, untimed=True, zero_weights=True,
    )  # fmt: skip


STEPS: dict[str, Step] = {
    "params": _size_step(
        sizes.params, "parameter counts (total, trainable, without classifier)", SizeSettings
    ),
    "madds": _size_step(
        sizes.madds,
        "multiply-adds at batch 1 by each counter, and weight bytes per image",
        MaddsSettings,
        check=_check_counters,
    ),
    "latency": FamilyStep(
        description="CPU latency at batch 1 (one thread unless set), families interleaved",
        run=timed.latency,
        settings=LatencySettings,
        check=_all(*_rounds_checks("rounds", "max_rounds", "warmup", "threads")),
    ),
    "throughput": ModelStep(
        description="GPU images/s at a large batch (CUDA events) and peak memory",
        run=timed.throughput,
        settings=ThroughputSettings,
        check=_all(
            _positive("batch", "iterations", "repeats", "warmup", integer=True),
            _check_choice("amp", ("none", "fp16", "bf16")),
            check_options,
            _check_choice("cudnn_benchmark", (True, False)),
            _positive("steady_tolerance"),
            _at_least_zero("max_warmup_blocks", integer=True),
            _at_least_zero("memory_reserve_gib"),
        ),
        needs_cuda=True,
    ),
    "batch_sweep": FamilyStep(
        description="latency per image at several batch sizes (all cores, or the GPU), "
        "families interleaved",
        run=batch_sweep.batch_sweep,
        settings=BatchSweepSettings,
        check=_all(batch_sweep.check_sweep, *_rounds_checks("rounds", "max_rounds", "warmup")),
    ),
    "train_step": FamilyStep(
        description="forward + backward + SGD step time per image",
        run=timed.train_step,
        settings=TrainSettings,
        check=_all(
            _positive("batch", "rounds", "warmup", integer=True),
            _positive("min_run_time", "block_time"),
            _check_choice("device", ("auto", "cpu", "cuda")),
            check_options,
            _check_choice("allocator", ALLOCATORS),
        ),
    ),
    "sparsity": FamilyStep(
        description="spatial DynConv at mask densities: conditional MAdds, "
        "dense/masked/sparse latency",
        run=sparsity.sparsity,
        settings=SparsitySettings,
        check=_all(
            *_rounds_checks("rounds", "max_rounds", "warmup", "patch", "tile", "threads"),
            _positive("gpu_batch", "gpu_iterations", "gpu_warmup", "gpu_repeats", integer=True),
            _at_least_zero("gpu_warmup_blocks", "gpu_latency_batch", integer=True),
            _check_choice("cpu_latency", (True, False)),
            _check_choice("granularity", GRANULARITIES),
            _check_choice("gpu", ("auto", "off")),
            _check_sparsity,
        ),
        ratios=False,  # the executions of one model against each other
    ),
    "resolution": _size_step(
        sizes.resolution,
        "multiply-adds at batch 1 by each counter at several input sizes",
        ResolutionSettings,
        check=_all(_check_counters, _check_input_sizes),
    ),
    "roofline": ModelStep(
        description="per-layer MAdds and bytes at batch 1, for the report's latency floor",
        run=ceilings_and_layers.roofline,
        settings=SizeSettings,
        untimed=True,
    ),
    "machine": MachineStep(
        description="read bandwidth and fp32 GEMM rate of this machine, 1 thread and all cores",
        run=ceilings_and_layers.machine,
        settings=MachineSettings,
        check=_all(_positive("read_mib", "min_run_time"), _positive("gemm_size", integer=True)),
    ),
    "profile": ModelStep(
        description="torch.profiler trace and time per operator phase",
        run=timed.profile,
        settings=ProfileSettings,
        check=_all(_positive("steps", integer=True), _check_choice("device", ("cpu", "cuda"))),
    ),
}
