"""What a suite can measure: each measure turns a family of built models into records.

A measure declares the settings it understands (with defaults) and validates
their values, so a suite file is checked before anything runs. Every measure
takes a family (see :mod:`dynbench.run.family`); one defined per model is run on
each member in turn. Metric names live in :mod:`dynbench.results.names`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from dynbench.errors import DynbenchError
from dynbench.measure.allocator import ALLOCATORS
from dynbench.measure.environment import all_cores
from dynbench.models.registry import ModelInfo
from dynbench.ops.dynconv import GRANULARITIES, MASK_SOURCES
from dynbench.results.names import COUNTERS
from dynbench.results.record import Record, error_record
from dynbench.run import batches, floor, sizes, sparsity, timed
from dynbench.run.family import Emit, Member, Progress
from dynbench.run.options import OPTION_SETTINGS, check_options

FamilyRun = Callable[[list[Member], dict, Emit, Progress], None]
ModelRun = Callable[[ModelInfo, nn.Module, dict], list[Record]]


def per_model(run_one: ModelRun) -> FamilyRun:
    """A family measure that runs ``run_one`` on each member in turn; a member whose
    measurement raises gets an error record and the others are still measured."""

    def run(members: list[Member], settings: dict, emit: Emit, progress: Progress) -> None:
        for info, model in members:
            progress(info.name)
            try:
                records = run_one(info, model, settings)
            except Exception as exc:  # the model's (or the user's) bug, not the run's
                records = [error_record(info.name, run_one.__name__, exc)]
            for record in records:
                emit(record)

    return run


@dataclass(frozen=True)
class Measure:
    name: str
    description: str
    run: FamilyRun
    settings: dict[str, object] = field(default_factory=dict)
    check: Callable[[dict, str], None] | None = None
    needs_family: bool = False  # ratios to the baseline: the whole family at once
    needs_cuda: bool = False
    untimed: bool = False  # times nothing: may run on every core at once (run.pool)
    machine_wide: bool = False  # measures the machine, not models: once per run, no members
    zero_weights: bool = False  # reads no weight's value: models built with zero weights

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
    counters = settings.get("counters", list(COUNTERS))
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


def _threads_within_cores(settings: dict, source: str) -> None:
    """More threads than cores time the scheduler, not the model: refused."""
    threads, cores = settings.get("threads"), all_cores()
    if isinstance(threads, int) and not isinstance(threads, bool) and threads > cores:
        raise DynbenchError(
            f"{source}: threads = {threads} is more than the {cores} cores this process may "
            f"run on; accepted: 1 to {cores}"
        )


def _at_least_zero(*keys: str, integer: bool = False) -> Callable[[dict, str], None]:
    def check(settings: dict, source: str) -> None:
        for key in keys:
            value = settings.get(key, 0)
            kinds = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
                kind = "an integer" if integer else "a number"
                raise DynbenchError(f"{source}: {key} = {value!r} is not {kind} >= 0")

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


# the interleaved rounds of the latency and sparsity measures
ROUNDS_SETTINGS = {
    "input_size": None,
    "rounds": 150,
    "max_rounds": 400,
    "ci_target": 0.01,
    "min_run_time": 5.0,
    "block_time": 0.02,
    "warmup": 3,
    "noise_threshold": 0.1,
    "fault_threshold": 50.0,
    "allocator": "system",
}
LATENCY_SETTINGS = {**ROUNDS_SETTINGS, **OPTION_SETTINGS, "threads": 1}
THROUGHPUT_SETTINGS = {
    **OPTION_SETTINGS,
    "device": "cuda",
    "input_size": None,
    "batch": 200,
    "iterations": 20,
    "repeats": 5,
    "warmup": 5,
    "amp": "none",
    "cudnn_benchmark": True,
    # warm-up blocks (of `iterations` calls) are timed until two in a row agree within
    # steady_tolerance, at most max_warmup_blocks; memory_reserve_gib is allocated once
    # and freed into the allocator's cache before the model runs (0: none)
    "steady_tolerance": 0.02,
    "max_warmup_blocks": 8,
    "memory_reserve_gib": 0.0,
}
TRAIN_SETTINGS = {
    **OPTION_SETTINGS,
    "input_size": None,
    "device": "auto",
    "batch": None,
    "rounds": 6,
    "min_run_time": 1.0,
    "block_time": 0.02,
    "warmup": 2,
    "allocator": "system",
}
SPARSITY_SETTINGS = {
    **ROUNDS_SETTINGS,
    **OPTION_SETTINGS,
    "threads": 1,
    "rounds": 20,
    "max_rounds": 60,
    "ci_target": 0.02,
    "min_run_time": 1.0,
    "densities": [0.0, 0.1, 0.25, 0.5, 0.75, 1.0],
    "masks": ["random", "blob"],
    "seed": 0,
    "patch": 4,
    "granularity": "auto",
    "tile": 8,
    "gpu": "auto",
    "gpu_batch": 200,
    "gpu_iterations": 10,
    "gpu_warmup": 3,
    "gpu_repeats": 3,  # timed blocks per execution; warm-up blocks until two agree within 2%
    "gpu_warmup_blocks": 4,
    "gpu_latency_batch": 0,  # also time the GPU at this batch (1: latency); 0: not
    "cpu_latency": True,  # false: conditional MAdds and the GPU only
}
MACHINE_SETTINGS = {"read_mib": None, "gemm_size": 2048, "min_run_time": 2.0}
BATCH_SWEEP_SETTINGS = {
    **ROUNDS_SETTINGS,
    **OPTION_SETTINGS,
    "batches": [1, 2, 4, 8, 16, 32, 64],
    "threads": "all",
    "device": "auto",
    "rounds": 6,
    "max_rounds": 6,
    "ci_target": None,
    "min_run_time": 0.5,
}
PROFILE_SETTINGS = {"input_size": None, "steps": 3, "trace_dir": "runs/profile", "device": "cpu"}


MEASURES: dict[str, Measure] = {
    "params": Measure(
        "params",
        "parameter counts (total, trainable, without classifier)",
        per_model(sizes.params),
        {"input_size": None},
        untimed=True,
        zero_weights=True,
    ),
    "madds": Measure(
        "madds",
        "multiply-adds at batch 1 by each counter, and weight bytes per image",
        per_model(sizes.madds),
        {"input_size": None, "counters": list(COUNTERS)},
        _check_counters,
        untimed=True,
        zero_weights=True,
    ),
    "latency": Measure(
        "latency",
        "CPU latency at batch 1 (one thread unless set), families interleaved",
        timed.latency,
        LATENCY_SETTINGS,
        _all(
            _positive("rounds", "max_rounds", "warmup", "threads", integer=True),
            _threads_within_cores,
            check_options,
            _check_choice("allocator", ALLOCATORS),
            _positive("min_run_time", "block_time", "noise_threshold", "ci_target"),
            _positive("fault_threshold"),
        ),
        needs_family=True,
    ),
    "throughput": Measure(
        "throughput",
        "GPU images/s at a large batch (CUDA events) and peak memory",
        per_model(timed.throughput),
        THROUGHPUT_SETTINGS,
        _all(
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
    "batch_sweep": Measure(
        "batch_sweep",
        "latency per image at several batch sizes (all cores, or the GPU), families interleaved",
        batches.batch_sweep,
        BATCH_SWEEP_SETTINGS,
        _all(
            batches.check_sweep,
            _threads_within_cores,
            _positive("rounds", "max_rounds", "warmup", integer=True),
            check_options,
            _check_choice("allocator", ALLOCATORS),
            _positive("min_run_time", "block_time", "noise_threshold", "ci_target"),
            _positive("fault_threshold"),
        ),
        needs_family=True,
    ),
    "train_step": Measure(
        "train_step",
        "forward + backward + SGD step time per image",
        timed.train_step,
        TRAIN_SETTINGS,
        _all(
            _positive("batch", "rounds", "warmup", integer=True),
            _positive("min_run_time", "block_time"),
            _check_choice("device", ("auto", "cpu", "cuda")),
            check_options,
            _check_choice("allocator", ALLOCATORS),
        ),
        needs_family=True,
    ),
    "sparsity": Measure(
        "sparsity",
        "spatial DynConv at mask densities: conditional MAdds, dense/masked/sparse latency",
        sparsity.sparsity,
        SPARSITY_SETTINGS,
        _all(
            _positive("rounds", "max_rounds", "warmup", "patch", "tile", "threads", integer=True),
            _threads_within_cores,
            check_options,
            _check_choice("allocator", ALLOCATORS),
            _positive("gpu_batch", "gpu_iterations", "gpu_warmup", "gpu_repeats", integer=True),
            _at_least_zero("gpu_warmup_blocks", "gpu_latency_batch", integer=True),
            _check_choice("cpu_latency", (True, False)),
            _check_choice("granularity", GRANULARITIES),
            _check_choice("gpu", ("auto", "off")),
            _positive("min_run_time", "block_time", "noise_threshold", "ci_target"),
            _positive("fault_threshold"),
            _check_sparsity,
        ),
    ),
    "resolution": Measure(
        "resolution",
        "multiply-adds at batch 1 by each counter at several input sizes",
        per_model(sizes.resolution),
        {"counters": list(COUNTERS), "input_sizes": [[3, 224, 224]]},
        _all(_check_counters, _check_input_sizes),
        untimed=True,
        zero_weights=True,
    ),
    "roofline": Measure(
        "roofline",
        "per-layer MAdds and bytes at batch 1, for the report's latency floor",
        per_model(floor.roofline),
        {"input_size": None},
        untimed=True,
    ),
    "machine": Measure(
        "machine",
        "read bandwidth and fp32 GEMM rate of this machine, 1 thread and all cores",
        floor.machine,
        MACHINE_SETTINGS,
        _all(_positive("read_mib", "min_run_time"), _positive("gemm_size", integer=True)),
        machine_wide=True,
    ),
    "profile": Measure(
        "profile",
        "torch.profiler trace and time per operator phase",
        per_model(timed.profile),
        PROFILE_SETTINGS,
        _all(_positive("steps", integer=True), _check_choice("device", ("cpu", "cuda"))),
    ),
}
