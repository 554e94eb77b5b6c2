"""torch.profiler traces per model, and where the time goes by operator phase.

Each model gets a trace written by ``tensorboard_trace_handler`` (a Chrome
trace JSON: TensorBoard with torch-tb-profiler, Perfetto and chrome://tracing
all read it). The dynamic operators mark their phases with
``record_function('attention' | 'aggregation' | 'conv')``; the phase table sums
those scopes per forward, and 'other' is the rest of the forward (static
layers, BN, activations, framework overhead).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.profiler import (
    ProfilerActivity,
    profile,
    record_function,
    schedule,
    tensorboard_trace_handler,
)

from dynbench.ops.base import PHASES


def profile_phases(
    model: nn.Module, x: torch.Tensor, trace_dir: Path, steps: int = 3
) -> dict[str, float]:
    """Milliseconds per forward spent in each phase, plus 'other' and 'forward' (total)."""
    activities = [ProfilerActivity.CPU]
    if x.is_cuda:
        activities.append(ProfilerActivity.CUDA)
    trace_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    with (
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
    totals = {event.key: event.cpu_time_total for event in prof.key_averages()}
    per_forward = {phase: totals.get(phase, 0.0) / steps / 1000 for phase in PHASES}
    forward = totals.get("forward", 0.0) / steps / 1000
    per_forward["other"] = max(forward - sum(per_forward.values()), 0.0)
    per_forward["forward"] = forward
    return per_forward


def trace_files(trace_dir: Path) -> list[Path]:
    return sorted(trace_dir.glob("*.pt.trace.json*"))
