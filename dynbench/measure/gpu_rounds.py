"""Several models timed in interleaved rounds of blocks on one device, each warmed until
steady first, with the memory each would hold alone: the GPU form of
:func:`dynbench.measure.timing.interleaved`, for models set side by side."""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dynbench.measure.gpu import cuda_event_timer, wall_clock_timer, warm_until_steady
from dynbench.ops.base import release_workspaces

Timer = Callable[[Callable[[], object], int], float]


@dataclass
class GpuTimed:
    """One model's blocks in the rounds: milliseconds per block of ``iterations`` calls,
    the warm-up blocks, whether they became steady, and its peak memory in bytes (None
    off CUDA)."""

    blocks: list[float] = field(default_factory=list)
    warmup: tuple[float, ...] = ()
    steady: bool = False
    peak: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.blocks)

    @property
    def spread(self) -> float:
        """(slowest - fastest block) / median."""
        return (max(self.blocks) - min(self.blocks)) / self.median


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def gpu_interleaved(
    models: dict[str, nn.Module],
    x: Tensor,
    rounds: int,
    iterations: int,
    timer: Timer | None = None,
    warmup_blocks: int = 4,
    tolerance: float = 0.02,
    seed: int = 0,
) -> dict[str, GpuTimed]:
    """Every model (already on ``x``'s device; CUDA events time it there, the wall clock
    elsewhere) warmed until two blocks of ``iterations`` calls agree within ``tolerance``
    (at most ``warmup_blocks``), then ``rounds`` rounds of one block each in a shuffled
    order; then, on CUDA, each model's :func:`peak_alone`."""
    cuda = x.is_cuda
    timer = timer or (cuda_event_timer if cuda else wall_clock_timer)
    rng = random.Random(seed)
    timed = {name: GpuTimed() for name in models}
    calls = {name: (lambda m=model: m(x)) for name, model in models.items()}
    with torch.inference_mode():
        for name in models:
            timed[name].warmup, timed[name].steady = warm_until_steady(
                timer, calls[name], iterations, tolerance, warmup_blocks
            )
        for _ in range(rounds):
            order = list(models)
            rng.shuffle(order)
            for name in order:
                timed[name].blocks.append(timer(calls[name], iterations))
        if cuda:
            for name, model in models.items():
                timed[name].peak = peak_alone(model, x)
    return timed


def peak_alone(model: nn.Module, x: Tensor) -> int:
    """The most memory one call of ``model`` allocates above what is allocated before it
    (the other models' weights), plus its own weights and the batch: what it would hold
    alone. dynbench's kept buffers are dropped first and after, so none is counted to
    another model."""
    release_workspaces(model)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    model(x)
    torch.cuda.synchronize()
    own = torch.cuda.max_memory_allocated() - before
    release_workspaces(model)
    return own + tensor_bytes(model) + x.numel() * x.element_size()


def per_round(ours: GpuTimed, theirs: GpuTimed) -> float:
    """Median over rounds of theirs' block time / ours': ours' throughput relative to theirs."""
    return statistics.median(t / o for o, t in zip(ours.blocks, theirs.blocks, strict=True))
