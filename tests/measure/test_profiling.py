"""Profiling: phase times per forward, traces on disk, and a quiet terminal."""

from types import SimpleNamespace

import torch
from torch.autograd import DeviceType

from dynbench.measure.profiling import profile_phases, scope_totals, trace_files
from dynbench.ops.odconv import ODConv2d


def test_profiler_log_lines_do_not_reach_the_terminal(capfd, tmp_path):
    model = torch.nn.Sequential(ODConv2d(4, 4, 3, 1, 1, num_kernels=2))
    phases = profile_phases(model, torch.randn(1, 4, 8, 8), tmp_path, steps=2)
    captured = capfd.readouterr()
    assert "USDT" not in captured.err and "profiler_start" not in captured.err
    assert phases["conv"] > 0 and phases["forward"] >= phases["conv"]
    assert trace_files(tmp_path)


def test_other_output_written_while_profiling_is_kept(capfd, tmp_path):
    class Talks(torch.nn.Module):
        def forward(self, x):
            import sys

            sys.stderr.write("a warning of the model\n")
            return x * 2

    profile_phases(Talks(), torch.randn(1, 4), tmp_path, steps=1)
    err = capfd.readouterr().err
    assert err.count("a warning of the model") == 3  # wait, warm-up, one active step


def test_a_cuda_profile_takes_the_device_time_of_each_scope():
    """key_averages() of a CUDA run: each scope's host event (its kernels' time in
    device_time_total) and the GPU's own copy of the annotation, which is left out."""

    def event(key, device_type, host_us, device_us):
        return SimpleNamespace(
            key=key, device_type=device_type, cpu_time_total=host_us, device_time_total=device_us
        )

    events = [
        event("forward", DeviceType.CPU, 900.0, 300.0),
        event("conv", DeviceType.CPU, 500.0, 200.0),
        event("forward", DeviceType.CUDA, 0.0, 350.0),
    ]
    assert scope_totals(events, device_time=True) == {"forward": 300.0, "conv": 200.0}
    assert scope_totals(events, device_time=False) == {"forward": 900.0, "conv": 500.0}
