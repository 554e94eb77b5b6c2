"""The settings of a run: one typed, frozen object per step, built once from the suite
and the command line.

A suite's ``[settings]`` table is an untyped dict checked key by key (see
:mod:`dynbench.run.steps`); once checked, each step is handed its own frozen dataclass,
whose fields are the settings it understands and whose defaults are the field defaults.
A step reads ``settings.rounds``, never a key with a default of its own, and no consumer
can change what another one reads (as ``torch.utils.benchmark``'s ``TaskSpec``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from dynbench.measure.madds import MADDS_COUNTERS

Size = list[int] | tuple[int, ...] | None
S = TypeVar("S", bound="StepSettings")


@dataclass(frozen=True)
class StepSettings:
    """The base of every step's settings: built from checked values, read by attribute."""

    @classmethod
    def names(cls) -> list[str]:
        """The settings this step understands, in their declared order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_values(cls: type[S], values: Mapping[str, object]) -> S:
        """These settings with ``values`` (the suite's, checked) over the defaults."""
        return cls(**{name: values[name] for name in cls.names() if name in values})

    def stamped(self) -> dict[str, object]:
        """What a record stores of these settings: everything that was set to something."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class SizeSettings(StepSettings):
    """params and roofline: the input size only (None: each model's own)."""

    input_size: Size = None


@dataclass(frozen=True)
class MaddsSettings(SizeSettings):
    counters: list[str] = field(default_factory=lambda: list(MADDS_COUNTERS))


@dataclass(frozen=True)
class ResolutionSettings(StepSettings):
    counters: list[str] = field(default_factory=lambda: list(MADDS_COUNTERS))
    input_sizes: list[list[int]] = field(default_factory=lambda: [[3, 224, 224]])


@dataclass(frozen=True)
class RoundsSettings(StepSettings):
    """The interleaved rounds of the latency, sparsity and batch-sweep steps."""

    input_size: Size = None
    rounds: int = 150
    max_rounds: int = 400
    ci_target: float | None = 0.01
    min_run_time: float = 5.0
    block_time: float = 0.02
    warmup: int = 3
    noise_threshold: float = 0.1
    fault_threshold: float = 50.0
    allocator: str = "system"


@dataclass(frozen=True)
class OptionSettings(StepSettings):
    """The options of the field's benchmark tools (see :mod:`dynbench.run.options`), with
    the defaults of eager PyTorch in fp32."""

    compile: bool = False
    compile_mode: str = "default"
    dtype: str = "fp32"
    channels_last: bool = False


@dataclass(frozen=True)
class LatencySettings(OptionSettings, RoundsSettings):  # fields: the rounds', then the options'
    threads: int | str = 1


@dataclass(frozen=True)
class ThroughputSettings(OptionSettings):
    device: str = "cuda"
    input_size: Size = None
    batch: int = 200
    iterations: int = 20
    repeats: int = 5
    warmup: int = 5
    amp: str = "none"
    cudnn_benchmark: bool = True
    # warm-up blocks (of `iterations` calls) are timed until two in a row agree within
    # steady_tolerance, at most max_warmup_blocks; memory_reserve_gib is allocated once
    # and freed into the allocator's cache before the model runs (0: none)
    steady_tolerance: float = 0.02
    max_warmup_blocks: int = 8
    memory_reserve_gib: float = 0.0


@dataclass(frozen=True)
class SparsitySettings(LatencySettings):
    rounds: int = 20
    max_rounds: int = 60
    ci_target: float | None = 0.02
    min_run_time: float = 1.0
    densities: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
    masks: list[str] = field(default_factory=lambda: ["random", "blob"])
    seed: int = 0
    patch: int = 4
    granularity: str = "auto"
    tile: int = 8
    gpu: str = "auto"
    gpu_batch: int = 200
    gpu_iterations: int = 10
    gpu_warmup: int = 3
    gpu_repeats: int = 3  # timed blocks per execution; warm-up blocks until two agree within 2%
    gpu_warmup_blocks: int = 4
    gpu_latency_batch: int = 0  # also time the GPU at this batch (1: latency); 0: not
    cpu_latency: bool = True  # false: conditional MAdds and the GPU only


@dataclass(frozen=True)
class BatchSweepSettings(OptionSettings, RoundsSettings):
    batches: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    threads: int | str = "all"
    device: str = "auto"
    rounds: int = 6
    max_rounds: int = 6
    ci_target: float | None = None
    min_run_time: float = 0.5


@dataclass(frozen=True)
class MachineSettings(StepSettings):
    read_mib: float | None = None
    gemm_size: int = 2048
    min_run_time: float = 2.0


@dataclass(frozen=True)
class ProfileSettings(StepSettings):
    input_size: Size = None
    steps: int = 3
    trace_dir: str = "runs/profile"
    device: str = "cpu"


@dataclass(frozen=True)
class RunSettings:
    """A run's settings: the suite's ``[settings]`` with the command line's options over
    them, checked; each step reads its own typed part (:meth:`for_step`)."""

    values: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, values: Mapping[str, object]) -> RunSettings:
        return cls(MappingProxyType(dict(values)))

    def for_step(self, settings_type: type[S]) -> S:
        return settings_type.from_values(self.values)


@dataclass(frozen=True)
class TrainSettings(OptionSettings):
    input_size: Size = None
    device: str = "auto"
    batch: int | None = None
    rounds: int = 6
    min_run_time: float = 1.0
    block_time: float = 0.02
    warmup: int = 2
    allocator: str = "system"
