"""GPU throughput at a large batch, timed with CUDA events, with peak memory.

Per-sample kernels make a dynamic model's activations *and* weights grow with
the batch, so peak memory (``torch.cuda.max_memory_allocated``, reset before
each model) is recorded beside images per second. A model that runs out of
memory is reported as OOM at that batch size; the batch is never shrunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class ThroughputResult:
    images_per_s: float | None
    peak_memory_bytes: int | None
    oom: bool = False
    milliseconds: float | None = None


def cuda_event_timer(fn: Callable[[], object], iterations: int) -> float:
    """Milliseconds for ``iterations`` calls, between two CUDA events."""
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iterations):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def measure_throughput(
    model: nn.Module,
    input_size: tuple[int, int, int],
    batch: int,
    iterations: int,
    warmup: int,
    amp: str | None = None,
    channels_last: bool = False,
    device: str = "cuda",
    timer: Callable[[Callable[[], object], int], float] = cuda_event_timer,
) -> ThroughputResult:
    """Images per second of ``model`` in eval + inference mode at ``batch``."""
    cuda = device.startswith("cuda")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = model.to(device=device, memory_format=memory_format).eval()
        x = torch.randn(batch, *input_size, device=device).to(memory_format=memory_format)
        autocast = (
            torch.autocast(device_type=device.split(":")[0], dtype=AMP_DTYPES[amp])
            if amp
            else contextlib.nullcontext()
        )

        def forward() -> object:
            return model(x)

        with torch.inference_mode(), autocast:
            for _ in range(warmup):
                forward()
            if cuda:
                torch.cuda.synchronize()
            elapsed_ms = timer(forward, iterations)
        peak = torch.cuda.max_memory_allocated() if cuda else None
        return ThroughputResult(batch * iterations / (elapsed_ms / 1000), peak, False, elapsed_ms)
    except torch.cuda.OutOfMemoryError:
        peak = torch.cuda.max_memory_allocated() if cuda else None
        return ThroughputResult(None, peak, oom=True)
    finally:
        model.to("cpu")
        if cuda:
            torch.cuda.empty_cache()
