"""Models timed in interleaved rounds of blocks (on the CPU with a scripted timer)."""

import pytest
import torch
from torch import nn

from dynbench.measure.gpu_rounds import GpuTimed, gpu_interleaved, per_round, tensor_bytes


class Counted(nn.Module):
    def __init__(self, name: str, log: list) -> None:
        super().__init__()
        self.name, self.log, self.conv = name, log, nn.Conv2d(3, 2, 1)

    def forward(self, x):
        self.log.append(self.name)
        return self.conv(x)


def test_gpu_rounds_warm_each_model_then_shuffle_one_block_each():
    log: list[str] = []
    models = {n: Counted(n, log) for n in ("static", "ours", "theirs")}
    times = {"static": [10.0, 10.0], "ours": [30.0, 20.0, 20.1], "theirs": [25.0] * 4}

    def timer(fn, iterations):
        fn()
        name = log[-1]
        return times[name].pop(0) if len(times[name]) > 1 else times[name][0]

    timed = gpu_interleaved(models, torch.randn(1, 3, 4, 4), 3, 5, timer, 4, 0.02)
    assert timed["ours"].warmup == (30.0, 20.0, 20.1) and timed["ours"].steady
    assert timed["static"].warmup == (10.0, 10.0) and timed["theirs"].warmup == (25.0, 25.0)
    rounds = log[-9:]
    assert [sorted(rounds[i : i + 3]) for i in (0, 3, 6)] == [sorted(models)] * 3
    assert rounds[0:3] != rounds[3:6] or rounds[3:6] != rounds[6:9]  # shuffled (seed 0)
    assert timed["ours"].blocks == [20.1] * 3 and timed["ours"].peak is None  # no CUDA


def test_a_model_that_never_settles_is_marked_unsteady_after_its_warmup_blocks():
    times = iter([10.0, 20.0, 40.0, 80.0, 5.0, 6.0])
    model = nn.Linear(2, 2)
    timed = gpu_interleaved({"m": model}, torch.randn(1, 2), 2, 3, lambda fn, n: next(times))
    assert timed["m"].warmup == (10.0, 20.0, 40.0, 80.0) and not timed["m"].steady
    assert timed["m"].blocks == [5.0, 6.0]


def test_block_statistics_and_throughput_relative_to_another_model():
    ours, theirs = GpuTimed([10.0, 12.0, 11.0]), GpuTimed([20.0, 18.0, 33.0])
    assert ours.median == 11.0 and ours.spread == pytest.approx(2 / 11)
    assert per_round(ours, theirs) == 2.0  # 20/10, 18/12, 33/11: median 2
    assert per_round(theirs, ours) == 0.5


def test_tensor_bytes_counts_parameters_and_buffers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    # conv 4*3*9 + 4, norm weight and bias 8, running mean and var 8 (fp32), count 1 (int64)
    assert tensor_bytes(model) == (108 + 4 + 8 + 8) * 4 + 8
    assert tensor_bytes(model.half()) == (108 + 4 + 8 + 8) * 2 + 8
