"""CPU timing with ``torch.utils.benchmark``: latency at batch 1 and training steps.

The machines this runs on are often shared virtual machines whose speed drifts
from second to second as neighbours load the host. Timing each model in its own
block of a few seconds and dividing medians then gives ratios that move between
runs by more than the effects being measured.

So the models of one family are measured *interleaved call by call*: a round
times every model once (a ``torch.utils.benchmark`` block of about
``block_time`` seconds, a single call for a ResNet-18), in a freshly shuffled
order, and the suite runs a few hundred such rounds. A variant and its
baseline measured in the same round saw the same machine, so the per-round
ratio cancels the drift; the estimate is the **median of the per-round
ratios** (robust to rounds where a burst of load hit only one side) with a
distribution-free 95% interval from order statistics
(``reports/latency/stability.md`` shows how two runs compare).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import resource
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils import benchmark


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def set_threads(threads: int = 1) -> dict[str, int]:
    """``threads`` intra-op threads (the papers' setting: one) and one inter-op thread
    (inter-op can only be set once per process)."""
    torch.set_num_threads(threads)
    # inter-op threads can be set only before the first parallel work; the value in force
    # is what gets recorded
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads()}


@dataclass
class Timed:
    """One model's samples, one per round (seconds per call), and the page faults its
    turns caused: a call that faults on every run (a freshly mapped buffer) is slowed by
    the kernel, not by its arithmetic, and its time says little about the operator."""

    name: str
    times: list[float] = field(default_factory=list)
    measured_s: float = 0.0  # timed seconds in all, for the suite's min_run_time
    calls: int = 0  # calls in its turns, timed and untimed
    minor_faults: int = 0
    major_faults: int = 0

    @property
    def faults_per_call(self) -> tuple[float, float]:
        """(minor, major) page faults per call over all of its turns."""
        calls = max(self.calls, 1)
        return self.minor_faults / calls, self.major_faults / calls

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        if len(self.times) < 4:
            return 0.0
        q = statistics.quantiles(self.times, n=4)
        return q[2] - q[0]


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval for the median from order statistics.

    The k-th smallest and k-th largest of n samples bracket the median with
    probability 1 - 2 P(Binomial(n, 1/2) < k); k is the largest that keeps this at
    or above ``confidence``. Fewer than 6 samples cannot reach 95%: NaN then.
    """
    ordered = sorted(values)
    n = len(ordered)
    alpha_half = (1 - confidence) / 2
    k, below = 0, 0  # below = number of outcomes with fewer than k successes, out of 2**n
    while True:
        below_next = below + math.comb(n, k)
        if below_next > alpha_half * 2**n:
            break
        k, below = k + 1, below_next
    if k == 0:
        return math.nan, math.nan
    return ordered[k - 1], ordered[n - k]


def ratio_with_ci(variant: Timed, baseline: Timed) -> tuple[float, float, float]:
    """Median of the per-round ratios variant / baseline and its 95% interval."""
    ratios = [v / b for v, b in zip(variant.times, baseline.times, strict=False)]
    low, high = median_ci(ratios)
    return statistics.median(ratios), low, high


@dataclass
class Interleaved:
    """What :func:`interleaved` measured; ``interrupted`` if Ctrl-C cut the rounds short."""

    timed: dict[str, Timed]
    rounds: int
    interrupted: bool = False


def interleaved(
    stmts: dict[str, Callable[[], object]],
    rounds: int,
    min_run_time: float,
    warmup: int,
    block_time: float = 0.02,
    seed: int = 0,
    on_round: Callable[[int, int], None] | None = None,
    precise_enough: Callable[[dict[str, Timed]], bool] | None = None,
    max_rounds: int | None = None,
) -> Interleaved:
    """Time the callables in turn, in a shuffled order each round.

    Runs at least ``rounds`` rounds and goes on until every callable has been
    timed for ``min_run_time`` seconds in all; past that, while
    ``precise_enough`` (asked after each round) says no, it goes on up to
    ``max_rounds``. A model's turn in a round is one
    ``blocked_autorange(min_run_time=block_time)``: one untimed call (its block
    size estimate, which also warms the caches after the previous model) and
    then timed calls until ``block_time`` has passed, a single call for anything
    slower. ``on_round`` gets (rounds done, rounds expected). A KeyboardInterrupt
    ends the rounds early and returns the complete rounds, flagged ``interrupted``.
    """
    timers = {
        name: benchmark.Timer(
            stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), label=name
        )
        for name, fn in stmts.items()
    }
    results = {name: Timed(name) for name in stmts}
    expected = rounds
    for timer in timers.values():
        per_call = timer.timeit(number=warmup).median
        expected = max(expected, math.ceil(min_run_time / max(per_call, block_time)))
    order = list(timers)
    rng = random.Random(seed)
    done = 0
    max_rounds = max(rounds, max_rounds or rounds)

    def finished() -> bool:
        if done < rounds or any(t.measured_s < min_run_time for t in results.values()):
            return False
        return precise_enough is None or done >= max_rounds or precise_enough(results)

    try:
        while not finished():
            rng.shuffle(order)
            for name in order:
                before = resource.getrusage(resource.RUSAGE_SELF)
                measurement = timers[name].blocked_autorange(min_run_time=block_time)
                after = resource.getrusage(resource.RUSAGE_SELF)
                timed = results[name]
                timed.times.append(measurement.median)
                timed.measured_s += sum(measurement.raw_times)
                # the timed calls and blocked_autorange's untimed block-size estimate
                timed.calls += measurement.number_per_run * len(measurement.raw_times) + 1
                timed.minor_faults += after.ru_minflt - before.ru_minflt
                timed.major_faults += after.ru_majflt - before.ru_majflt
            done += 1
            if on_round:
                on_round(done, max(expected, done))
    except KeyboardInterrupt:
        for timed in results.values():
            del timed.times[done:]  # drop the unfinished round so ratios stay paired
        return Interleaved(results, done, interrupted=True)
    return Interleaved(results, done)


def inference_call(model: nn.Module, *inputs: torch.Tensor) -> Callable[[], object]:
    """``model(*inputs)`` in eval mode under inference mode, as a callable to time."""
    model.eval()

    def call() -> object:
        with torch.inference_mode():
            return model(*inputs)

    return call


def train_step_call(
    model: nn.Module,
    batch: int,
    input_size: tuple[int, ...],
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Callable[[], object]:
    """Forward, cross-entropy, backward and an SGD step on a random batch.

    The labels cover the classes the model actually outputs (1000 for ImageNet
    models, 10 for the CIFAR ones, anything for a user model), found by one
    forward pass without a graph. ``model`` may be compiled; the batch takes its
    ``dtype`` and ``memory_format``.
    """
    model.train()
    x = torch.randn(batch, *input_size, dtype=dtype).contiguous(memory_format=memory_format)
    with torch.no_grad():
        num_classes = model(x).shape[-1]
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


def overhead_quotient_interval(
    new: Timed, old: Timed, static: Timed, samples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval (rounds resampled, paired) of overhead(new) / overhead(old),
    overhead = the median of a model's per-round ratio to ``static``, less 1: how two
    implementations of one operator compare when timed interleaved in one process."""
    rng = random.Random(seed)
    n = len(static.times)
    new_ratios = [t / s for t, s in zip(new.times, static.times, strict=True)]
    old_ratios = [t / s for t, s in zip(old.times, static.times, strict=True)]
    quotients = []
    for _ in range(samples):
        picks = [rng.randrange(n) for _ in range(n)]
        a = statistics.median(new_ratios[i] for i in picks) - 1
        b = statistics.median(old_ratios[i] for i in picks) - 1
        quotients.append(a / b if b > 0 else float("inf"))
    quotients.sort()
    return quotients[int(0.025 * samples)], quotients[int(0.975 * samples) - 1]
