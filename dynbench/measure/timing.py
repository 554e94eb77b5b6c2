"""CPU timing with ``torch.utils.benchmark``: latency at batch 1 and training steps.

Absolute times on a shared machine drift by several percent between runs, so
the models of one family are measured *interleaved*: in each round every model
(baseline first) gets a ``blocked_autorange`` block, and a variant's latency
is reported as the ratio of its median to the baseline's median **in the same
round**. Drift that is slow compared with one round cancels out of each ratio;
the geometric mean of the per-round ratios is the estimate and a t interval over
the rounds' log-ratios its confidence interval.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils import benchmark

T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def set_single_thread() -> dict[str, int]:
    """One intra-op and one inter-op thread (inter-op can only be set once per process)."""
    torch.set_num_threads(1)
    # inter-op threads can be set only before the first parallel work; the value in force
    # is what gets recorded
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads()}


@dataclass
class Timed:
    """One model's samples across rounds (seconds per call)."""

    name: str
    round_medians: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        if len(self.times) < 4:
            return 0.0
        q = statistics.quantiles(self.times, n=4)
        return q[2] - q[0]


def ratio_with_ci(variant: Timed, baseline: Timed) -> tuple[float, float, float]:
    """Geometric mean of per-round median ratios and its 95% t interval."""
    logs = [
        math.log(v / b) for v, b in zip(variant.round_medians, baseline.round_medians, strict=False)
    ]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    half = T_975.get(len(logs) - 1, 1.96) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def interleaved(
    stmts: dict[str, Callable[[], object]],
    rounds: int,
    min_run_time: float,
    warmup: int,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Timed]:
    """Time each callable in turn, ``rounds`` times, with ``torch.utils.benchmark``."""
    timers = {
        name: benchmark.Timer(
            stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), label=name
        )
        for name, fn in stmts.items()
    }
    for timer in timers.values():
        timer.timeit(number=warmup)
    results = {name: Timed(name) for name in stmts}
    for r in range(rounds):
        for name, timer in timers.items():
            measurement = timer.blocked_autorange(min_run_time=min_run_time)
            results[name].round_medians.append(measurement.median)
            results[name].times.extend(measurement.times)
        if on_round:
            on_round(r)
    return results


def inference_call(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    model.eval()

    def call() -> object:
        with torch.inference_mode():
            return model(x)

    return call


def train_step_call(
    model: nn.Module, batch: int, input_size: tuple[int, ...], num_classes: int = 1000
) -> Callable[[], object]:
    """Forward, cross-entropy, backward and an SGD step on a random batch."""
    model.train()
    x = torch.randn(batch, *input_size)
    y = torch.randint(0, num_classes, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step
