"""Interleaved timing: ratios, intervals, rounds, Ctrl-C, and the train-step call."""

import math
import mmap
import statistics
import time

import pytest
import torch

from dynbench.measure.timing import (
    Timed,
    interleaved,
    median_ci,
    overhead_quotient_interval,
    ratio_with_ci,
    train_step_call,
)
from dynbench.models import create_model


def test_ratio_is_median_of_paired_round_ratios():
    base = Timed("b", times=[1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 3.0])
    variant = Timed("v", times=[1.5 * t for t in base.times])
    ratio, low, high = ratio_with_ci(variant, base)
    assert ratio == pytest.approx(1.5)
    assert low == pytest.approx(1.5) and high == pytest.approx(1.5)  # no spread across rounds
    # one round hit by a burst of load on the variant's side only moves the median little
    burst = Timed("n", times=[1.5, 3.0, 1.5, 1.5, 3.0, 1.5, 9.0])
    ratio, low, high = ratio_with_ci(burst, base)
    assert ratio == pytest.approx(1.5) and high == pytest.approx(3.0)
    noisy = Timed("n", times=[1.4, 3.2, 1.5, 1.6, 2.9, 1.7, 4.4])
    ratio, low, high = ratio_with_ci(noisy, base)
    assert low < ratio < high


def test_median_interval_uses_binomial_order_statistics():
    values = [float(v) for v in range(1, 21)]
    # n = 20: P(Bin(20, 1/2) <= 5) = 0.0207 <= 0.025 < P(<= 6), so the 6th and 15th values
    assert median_ci(values) == (6.0, 15.0)
    assert median_ci(values[:6]) == (1.0, 6.0)  # 1 - 2/64 = 96.9%
    assert all(math.isnan(v) for v in median_ci(values[:5]))  # 5 samples cannot give 95%


def test_interleaved_runs_rounds_until_each_callable_has_min_run_time():
    calls = {"a": lambda: time.sleep(0.004), "b": lambda: time.sleep(0.002)}
    results = interleaved(calls, rounds=3, min_run_time=0.05, warmup=1, block_time=0.001)
    assert not results.interrupted
    assert len(results.timed["a"].times) == len(results.timed["b"].times) == results.rounds
    # b is the faster one: rounds stop once its calls (a sleep of 2 ms or more, longer on a
    # busy machine) add up to min_run_time
    assert results.rounds >= 0.05 / statistics.mean(results.timed["b"].times) - 1
    assert all(t.measured_s >= 0.05 for t in results.timed.values())
    fast = interleaved({"f": lambda: None}, rounds=4, min_run_time=1e-6, warmup=2)
    assert fast.rounds == 4 and fast.timed["f"].measured_s >= 4 * 0.02  # blocks last block_time


# A callable slower than block_time gets two calls a turn: blocked_autorange's untimed
# block-size estimate, then one timed call. The warm-up (timeit) makes three calls.
SLOW_CALL, BLOCK = 0.002, 0.001


def test_interleaved_goes_on_until_precise_enough_or_max_rounds():
    calls = {"a": lambda: None, "b": lambda: None}
    asked: list[int] = []

    def after_round_15(timed: dict) -> bool:
        asked.append(len(timed["a"].times))
        return len(timed["a"].times) >= 15

    kw = {"min_run_time": 1e-9, "warmup": 1, "block_time": 1e-4}
    results = interleaved(calls, 10, precise_enough=after_round_15, max_rounds=40, **kw)
    assert results.rounds == 15 and asked[0] == 10  # not asked before the minimum rounds
    never = interleaved(calls, 10, precise_enough=lambda timed: False, max_rounds=25, **kw)
    assert never.rounds == 25
    assert interleaved(calls, 10, precise_enough=lambda t: False, **kw).rounds == 10


def test_interleaved_shuffles_the_order_of_every_round():
    seen: list[str] = []

    def call(name: str) -> None:
        seen.append(name)
        time.sleep(SLOW_CALL)

    calls = {n: (lambda n=n: call(n)) for n in "abcd"}
    interleaved(calls, rounds=10, min_run_time=1e-9, warmup=1, block_time=BLOCK)
    turns = seen[4 * 3 :: 2]  # after the warm-up, the first call of every turn
    rounds = [tuple(turns[i : i + 4]) for i in range(0, 40, 4)]
    assert all(sorted(r) == list("abcd") for r in rounds)
    assert len(set(rounds)) > 3


def test_interleaved_keeps_complete_rounds_on_ctrl_c():
    count = {"n": 0}

    def dies_on_the_twelfth_call() -> None:
        count["n"] += 1
        if count["n"] == 12:
            raise KeyboardInterrupt
        time.sleep(SLOW_CALL)

    calls = {"a": lambda: time.sleep(SLOW_CALL), "b": dies_on_the_twelfth_call}
    results = interleaved(calls, rounds=50, min_run_time=1e-9, warmup=1, block_time=BLOCK)
    assert results.interrupted and results.rounds == 4  # calls 4-11 were rounds 1-4
    assert [len(t.times) for t in results.timed.values()] == [4, 4]


def test_train_step_labels_follow_the_model_classes():
    """A 10-class CIFAR model gets labels in [0, 10): a fixed 1000 would crash the loss."""
    model = create_model("resnet18_cifar")
    step = train_step_call(model, batch=2, input_size=(3, 32, 32))
    before = model.fc.weight.detach().clone()
    loss = step()
    assert torch.isfinite(loss) and not torch.equal(before, model.fc.weight)  # SGD stepped


def test_page_faults_per_call_are_counted():
    """A call that maps a fresh 8 MB buffer faults on every page of it, every call (as a
    kernel too large for the allocator's free lists does); a call reusing one does not."""
    size = 8 * 1024 * 1024
    kept = torch.empty(size // 4)

    def fresh() -> None:
        with mmap.mmap(-1, size) as buffer:
            buffer[::4096] = b"\1" * (size // 4096)

    def reused() -> None:
        kept.fill_(1.0)

    results = interleaved(
        {"fresh": fresh, "reused": reused}, rounds=6, min_run_time=1e-9, warmup=2, block_time=1e-4
    )
    pages = size // 4096
    fresh_minor, _ = results.timed["fresh"].faults_per_call
    reused_minor, _ = results.timed["reused"].faults_per_call
    assert fresh_minor > pages / 2
    assert reused_minor < 5
    assert results.timed["fresh"].calls >= 6


def test_overhead_quotient_interval_pairs_rounds_with_the_static_model():
    """Each round's ratio is taken to the static model's time in that round: a machine that
    slows every model alike in one round leaves the quotient of overheads as it is."""
    static = Timed("static", times=[1.0, 2.0, 1.0, 2.0, 1.0, 2.0])
    new = Timed("new", times=[1.1 * s for s in static.times])
    old = Timed("old", times=[1.2 * s for s in static.times])
    low, high = overhead_quotient_interval(new, old, static)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)
    mixed = Timed("mixed", times=[1.05, 2.3, 1.05, 2.3, 1.05, 2.3])  # overheads 5% and 15%
    low, high = overhead_quotient_interval(mixed, old, static)
    assert 0.25 - 1e-9 <= low < high <= 0.75 + 1e-9
