"""A forward's time split by op kind under torch.profiler: convolutions, kernel mixing
(the matmul that blends K expert kernels), other ops, and what lies outside any op
(Python, module calls, dispatch). The test of an op's kind looks at its name and
shapes only, so it applies alike to code that names its ops differently (the released
repositories)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile, record_function

from dynbench.ops.base import unmarked

OP_KINDS = ("conv", "kernel mix", "other ops", "outside ops", "forward")
CONV_OPS = {"aten::conv2d", "aten::convolution"}
MM_OPS = {"aten::mm", "aten::matmul", "aten::addmm", "aten::bmm", "aten::linear"}
MAX_KERNELS = 8  # a matmul this deep (or less) into >= MIN_MIXED columns mixes kernels
MIN_MIXED = 1024


def op_kind(name: str, shapes: list) -> str:
    """``conv``, ``kernel mix`` ([B, K] @ [K, N] with K <= 8 and N >= 1024) or ``other ops``."""
    if name in CONV_OPS:
        return "conv"
    if name in MM_OPS and len(shapes) >= 2 and len(shapes[0]) == 2 and len(shapes[1]) == 2:
        depth, columns = shapes[1]
        if depth <= MAX_KERNELS and columns >= MIN_MIXED:
            return "kernel mix"
    return "other ops"


def op_kind_times(model: nn.Module, x: Tensor, steps: int = 5) -> dict[str, float]:
    """Milliseconds per forward by :data:`OP_KINDS`, from torch.profiler on the calling
    thread's settings, after 3 untimed forwards.

    Only top-level aten ops are summed (an op called by another op is inside its
    parent's time), so the kinds add up to the ops' time, and ``outside ops`` is the
    rest of the forward. dynbench's phase marks are off (code beside it may have none).
    The profiler adds its own cost per op, so this is a breakdown, not a timing.
    """
    with torch.inference_mode(), unmarked():
        for _ in range(3):
            model(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                with record_function("forward"):
                    model(x)
    totals = dict.fromkeys(OP_KINDS, 0.0)
    for event in prof.events():
        if event.name == "forward":
            totals["forward"] += event.cpu_time_total
        elif event.name.startswith("aten::") and (
            event.cpu_parent is None or not event.cpu_parent.name.startswith("aten::")
        ):
            totals[op_kind(event.name, event.input_shapes)] += event.cpu_time_total
    totals["outside ops"] = totals["forward"] - sum(
        totals[key] for key in ("conv", "kernel mix", "other ops")
    )
    return {key: value / steps / 1000 for key, value in totals.items()}
