"""torch.profiler traces per model, and where the time goes by operator phase.

Each model gets a trace written by ``tensorboard_trace_handler`` (a Chrome
trace JSON: TensorBoard with torch-tb-profiler, Perfetto and chrome://tracing
all read it). The dynamic operators mark their phases with
``record_function('attention' | 'aggregation' | 'conv')``; the phase table sums
those scopes per forward, and 'other' is the rest of the forward (static
layers, BN, activations, framework overhead).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import nn
from torch.autograd import DeviceType
from torch.profiler import (
    ProfilerActivity,
    profile,
    record_function,
    schedule,
    tensorboard_trace_handler,
)

from dynbench.results.names import PHASES

# A log line of Kineto, the profiler's C++ side: "USDT:2026-01-01 12:00:00 12:12 File.cpp:52] ..."
KINETO_LOG_LINE = re.compile(r"^[A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \S+\.cpp:\d+\] ")


@contextlib.contextmanager
def kineto_logs_dropped() -> Iterator[None]:
    """Drop the log lines Kineto writes straight to file descriptor 2 while profiling.

    Kineto logs every profiler start and stop (``USDT: ... profiler_start``) whatever
    the log level asked for, bypassing Python's ``sys.stderr``. The descriptor is
    pointed at a temporary file for the duration and everything else written there
    is passed on afterwards.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not KINETO_LOG_LINE.match(line))
            if kept:
                sys.stderr.write(kept)


def profile_phases(
    model: nn.Module, x: torch.Tensor, trace_dir: Path, steps: int = 3
) -> dict[str, float]:
    """Milliseconds per forward spent in each phase, plus 'other' and 'forward' (total):
    host time on the CPU, the kernels' time on a CUDA device (see :func:`scope_totals`)."""
    activities = [ProfilerActivity.CPU]
    if x.is_cuda:
        activities.append(ProfilerActivity.CUDA)
    trace_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    with (
        kineto_logs_dropped(),
        profile(
            activities=activities,
            schedule=schedule(wait=1, warmup=1, active=steps),
            on_trace_ready=tensorboard_trace_handler(str(trace_dir)),
            record_shapes=True,
        ) as prof,
        torch.inference_mode(),
    ):
        for _ in range(2 + steps):
            with record_function("forward"):
                model(x)
            prof.step()
    totals = scope_totals(prof.key_averages(), device_time=x.is_cuda)
    per_forward = {phase: totals.get(phase, 0.0) / steps / 1000 for phase in PHASES}
    forward = totals.get("forward", 0.0) / steps / 1000
    per_forward["other"] = max(forward - sum(per_forward.values()), 0.0)
    per_forward["forward"] = forward
    return per_forward


def scope_totals(events: Iterable, device_time: bool) -> dict[str, float]:
    """Microseconds per event key over the active steps, from the host-side events (the
    ``record_function`` scopes as the CPU ran them). With ``device_time`` (a CUDA model)
    the time of the kernels each scope launched: its host time is only the launches."""
    field = "device_time_total" if device_time else "cpu_time_total"
    return {e.key: getattr(e, field) for e in events if e.device_type == DeviceType.CPU}


def trace_files(trace_dir: Path) -> list[Path]:
    return sorted(trace_dir.glob("*.pt.trace.json*"))
