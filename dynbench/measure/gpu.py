"""GPU throughput at a large batch, timed with CUDA events, with peak memory.

Per-sample kernels make a dynamic model's activations *and* weights grow with
the batch, so peak memory (``torch.cuda.max_memory_allocated``, reset before
each model) is recorded beside images per second. A model that runs out of
memory is reported as OOM at that batch size; the batch is never shrunk.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dynbench.measure.layout import to_channels_last

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class ThroughputResult:
    images_per_s: float | None
    peak_memory_bytes: int | None
    oom: bool = False
    milliseconds: float | None = None  # the median block of ``iterations`` calls
    compile_s: float | None = None  # torch.compile: the first call, timed apart
    block_ms: tuple[float, ...] = ()  # every timed block, for the spread between them

    @property
    def spread(self) -> float | None:
        """(slowest - fastest block) / median block: whether the GPU held steady."""
        if not self.block_ms:
            return None
        return (max(self.block_ms) - min(self.block_ms)) / self.milliseconds


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
    dtype: torch.dtype = torch.float32,
    compile_mode: str | None = None,
    repeats: int = 1,
) -> ThroughputResult:
    """Images per second of ``model`` in eval + inference mode at ``batch``: in ``dtype``
    (the weights and the batch; ``amp`` instead autocasts an fp32 model), compiled with
    ``compile_mode`` when one is given (the first call, which compiles, timed apart).

    ``repeats`` blocks of ``iterations`` calls are timed; the median block gives the
    figure and the blocks' spread says whether the GPU held steady while it was taken.
    The model is handed back on the CPU in the dtype it came in: a caller that measures it
    again (the sparsity suite, point after point) finds it as it left it."""
    cuda = device.startswith("cuda")
    came_in = _dtype_of(model)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = model.to(device=device, dtype=dtype).eval()
        if channels_last:
            to_channels_last(model)
        x = torch.randn(batch, *input_size, device=device, dtype=dtype)
        x = x.contiguous(memory_format=memory_format)
        run = torch.compile(model, mode=compile_mode) if compile_mode else model
        autocast = (
            torch.autocast(device_type=device.split(":")[0], dtype=AMP_DTYPES[amp])
            if amp
            else contextlib.nullcontext()
        )

        def forward() -> object:
            return run(x)

        compile_s = None
        with torch.inference_mode(), autocast:
            if compile_mode:
                start = time.perf_counter()
                forward()
                if cuda:
                    torch.cuda.synchronize()
                compile_s = round(time.perf_counter() - start, 3)
            for _ in range(warmup):
                forward()
            if cuda:
                torch.cuda.synchronize()
            blocks = tuple(timer(forward, iterations) for _ in range(repeats))
        peak = torch.cuda.max_memory_allocated() if cuda else None
        elapsed_ms = statistics.median(blocks)
        images_per_s = batch * iterations / (elapsed_ms / 1000)
        return ThroughputResult(images_per_s, peak, False, elapsed_ms, compile_s, blocks)
    except torch.cuda.OutOfMemoryError:
        peak = torch.cuda.max_memory_allocated() if cuda else None
        return ThroughputResult(None, peak, oom=True)
    finally:
        model.to("cpu", came_in)
        if cuda:
            torch.cuda.empty_cache()


def _dtype_of(model: nn.Module) -> torch.dtype:
    """The dtype of the model's floating-point weights (fp32 for a model without any)."""
    floating = (p.dtype for p in model.parameters() if p.is_floating_point())
    return next(floating, torch.float32)
