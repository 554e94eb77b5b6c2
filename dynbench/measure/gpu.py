"""GPU throughput at a large batch, timed with CUDA events, with peak memory.

Per-sample kernels make a dynamic model's activations *and* weights grow with
the batch, so peak memory (``torch.cuda.max_memory_allocated``, reset before
each model) is recorded beside images per second. A model that runs out of
memory is reported as OOM at that batch size; the batch is never shrunk.

A throughput is only a finding if the GPU did the same thing block after block, so the
result carries what shows it: every timed block (their spread), the warm-up blocks
(warm-up runs until two consecutive blocks agree within a tolerance, bounded), the
caching allocator's counters over each timed block (``cudaMalloc``/``cudaFree`` calls and
allocation retries: an allocator that frees and re-asks the driver for memory inside a
block synchronises the device there), the host syncs one forward makes, the
``cudnn.benchmark`` setting, and the card's clocks and temperature before and after. An
optional fixed reserve (allocated once, then freed into the allocator's cache) lets a
model whose per-sample kernels vary in size take its memory from the cache rather than
from the driver.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from dynbench.measure.gpu_state import gpu_state
from dynbench.measure.layout import to_channels_last
from dynbench.ops.base import release_workspaces

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# torch.cuda.memory_stats() counters read around each timed block: allocation retries (the
# cache freed and the driver asked again), and cudaMalloc / cudaFree calls where this torch
# counts them
ALLOCATOR_COUNTERS = ("num_alloc_retries", "num_device_alloc", "num_device_free", "num_ooms")


@dataclass
class ThroughputResult:
    images_per_s: float | None
    peak_memory_bytes: int | None
    oom: bool = False
    milliseconds: float | None = None  # the median block of ``iterations`` calls
    compile_s: float | None = None  # torch.compile: the first call, timed apart
    block_ms: tuple[float, ...] = ()  # every timed block, for the spread between them
    warmup_ms: tuple[float, ...] = ()  # the warm-up blocks, timed like the others
    steady: bool | None = None  # whether the last two warm-up blocks agreed
    allocator: tuple[dict[str, int], ...] = ()  # each timed block's counter deltas
    host_syncs: int | None = None  # synchronising calls in one forward (CUDA only)
    peak_reserved_bytes: int | None = None
    cudnn_benchmark: bool | None = None
    gpu_before: dict = field(default_factory=dict)
    gpu_after: dict = field(default_factory=dict)

    @property
    def spread(self) -> float | None:
        """(slowest - fastest block) / median block: whether the GPU held steady."""
        if not self.block_ms:
            return None
        return (max(self.block_ms) - min(self.block_ms)) / self.milliseconds

    def detail(self) -> dict:
        """What a record's detail keeps of this measurement (rounded, JSON-ready)."""
        return {
            "oom": self.oom,
            "elapsed_ms": self.milliseconds,  # the median block of `iterations` calls
            "block_ms": [round(ms, 3) for ms in self.block_ms],
            "spread": None if self.spread is None else round(self.spread, 4),
            "warmup_ms": [round(ms, 3) for ms in self.warmup_ms],
            "steady": self.steady,
            "allocator": list(self.allocator),
            "host_syncs": self.host_syncs,
            "peak_reserved_bytes": self.peak_reserved_bytes,
            "cudnn_benchmark": self.cudnn_benchmark,
            # fp32 convs (cuDNN) and matmuls may run in TF32 on tensor cores, each by its own
            # switch: a sparse path of gathers and matmuls and a dense conv can differ here
            "tf32": {
                "cudnn": torch.backends.cudnn.allow_tf32,
                "matmul": torch.backends.cuda.matmul.allow_tf32,
            },
            "gpu_before": self.gpu_before,
            "gpu_after": self.gpu_after,
            "compile_s": self.compile_s,
        }


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


def wall_clock_timer(fn: Callable[[], object], iterations: int) -> float:
    """Milliseconds for ``iterations`` calls by the host's clock: the CPU's stand-in for
    :func:`cuda_event_timer`, where the calls finish before they return."""
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) * 1e3


def agree(a: float, b: float, tolerance: float) -> bool:
    """Two block times within ``tolerance`` of the smaller one."""
    return abs(a - b) <= tolerance * min(a, b)


def warm_until_steady(
    timer: Callable[[Callable[[], object], int], float],
    fn: Callable[[], object],
    iterations: int,
    tolerance: float,
    max_blocks: int,
) -> tuple[tuple[float, ...], bool]:
    """Timed warm-up blocks until two consecutive ones agree within ``tolerance``, at most
    ``max_blocks`` (0: none); the blocks and whether the last two agreed."""
    blocks: list[float] = []
    while len(blocks) < max_blocks:
        blocks.append(timer(fn, iterations))
        if len(blocks) >= 2 and agree(blocks[-2], blocks[-1], tolerance):
            return tuple(blocks), True
    return tuple(blocks), False


def counter_deltas(before: dict, after: dict) -> dict[str, int]:
    """The allocator counters' growth between two ``memory_stats()`` snapshots, for the
    counters this torch has."""
    return {key: after[key] - before[key] for key in ALLOCATOR_COUNTERS if key in before}


def timed_blocks(
    timer: Callable[[Callable[[], object], int], float],
    fn: Callable[[], object],
    iterations: int,
    repeats: int,
    stats: Callable[[], dict],
) -> tuple[tuple[float, ...], tuple[dict[str, int], ...]]:
    """``repeats`` timed blocks, with the allocator counters' deltas over each."""
    blocks, deltas = [], []
    for _ in range(repeats):
        before = stats()
        blocks.append(timer(fn, iterations))
        deltas.append(counter_deltas(before, stats()))
    return tuple(blocks), tuple(deltas)


def count_host_syncs(fn: Callable[[], object]) -> int:
    """Synchronising CUDA calls (``.item()``, ``nonzero``, a copy to the host...) in one
    call of ``fn``, counted from the warnings of CUDA's sync debug mode."""
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.synchronize()  # outside the debug mode: this sync is the counter's own
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def reserve_memory(reserve_bytes: int, device: str) -> None:
    """Allocate ``reserve_bytes`` once and free it: the caching allocator keeps the segment,
    and later allocations are carved from it instead of new cudaMalloc calls."""
    if reserve_bytes > 0:
        block = torch.empty(reserve_bytes, dtype=torch.uint8, device=device)
        del block


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
    steady_tolerance: float = 0.02,
    max_warmup_blocks: int = 0,
    reserve_bytes: int = 0,
    memory_stats: Callable[[], dict] | None = None,
    state: Callable[[], dict] | None = None,
) -> ThroughputResult:
    """Images per second of ``model`` in eval + inference mode at ``batch``: in ``dtype``
    (the weights and the batch; ``amp`` instead autocasts an fp32 model), compiled with
    ``compile_mode`` when one is given (the first call, which compiles, timed apart).

    After ``warmup`` untimed calls, warm-up blocks of ``iterations`` calls are timed until
    two consecutive ones agree within ``steady_tolerance`` (at most ``max_warmup_blocks``;
    the result says whether they did). Then ``repeats`` blocks are timed; the median block
    gives the figure and the blocks' spread says whether the GPU held steady while it was
    taken. ``memory_stats`` and ``state`` (default: CUDA's allocator counters and the
    card's state, on CUDA only) are read around the blocks.
    The model is handed back on the CPU in the dtype it came in: a caller that measures it
    again (the sparsity suite, point after point) finds it as it left it. The dynamic
    operators' kept buffers are dropped before and after (:func:`release_workspaces`), so
    the peak and the allocator's state are this model's alone."""
    cuda = device.startswith("cuda")
    stats = memory_stats or (torch.cuda.memory_stats if cuda else dict)
    read_state = state or (gpu_state if cuda else dict)
    came_in = _dtype_of(model)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    before = read_state()
    release_workspaces(model)  # a previous model's buffers are not this one's memory
    try:
        if cuda:
            torch.cuda.empty_cache()
            reserve_memory(reserve_bytes, device)
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
            warmup_ms, steady = warm_until_steady(
                timer, forward, iterations, steady_tolerance, max_warmup_blocks
            )
            blocks, allocator = timed_blocks(timer, forward, iterations, repeats, stats)
            host_syncs = count_host_syncs(forward) if cuda else None
        peak = torch.cuda.max_memory_allocated() if cuda else None
        reserved = torch.cuda.max_memory_reserved() if cuda else None
        elapsed_ms = statistics.median(blocks)
        images_per_s = batch * iterations / (elapsed_ms / 1000)
        return ThroughputResult(
            images_per_s,
            peak,
            False,
            elapsed_ms,
            compile_s,
            blocks,
            warmup_ms,
            steady if max_warmup_blocks else None,
            allocator,
            host_syncs,
            reserved,
            torch.backends.cudnn.benchmark if cuda else None,
            before,
            read_state(),
        )
    except torch.cuda.OutOfMemoryError:
        peak = torch.cuda.max_memory_allocated() if cuda else None
        return ThroughputResult(None, peak, oom=True, gpu_before=before)
    finally:
        release_workspaces(model)
        model.to("cpu", came_in)
        if cuda:
            torch.cuda.empty_cache()


def _dtype_of(model: nn.Module) -> torch.dtype:
    """The dtype of the model's floating-point weights (fp32 for a model without any)."""
    floating = (p.dtype for p in model.parameters() if p.is_floating_point())
    return next(floating, torch.float32)
