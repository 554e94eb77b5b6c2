"""Profiling: phase times per forward, traces on disk, and a quiet terminal."""

import torch

from dynbench.measure.profiling import profile_phases, trace_files
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
