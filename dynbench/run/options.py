"""The options this field's benchmark tools give (timm's benchmark.py, TorchBench):
``torch.compile``, the dtype, the channels-last memory layout and the number of threads.

Each is a suite setting (and a ``dynbench run`` option) and lands in every timing record's
settings. Compiling is done before the rounds, and the first call, which compiles, is timed
on its own (``detail.compile_s``): it is a one-off cost, not a latency. A model that fails
to compile (dynamic per-sample kernels are exactly what a compiler may handle differently)
gets an error record with the compiler's one-line reason, and its family goes on without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dynbench.errors import DynbenchError
from dynbench.measure.layout import to_channels_last
from dynbench.run.settings import OptionSettings

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_options(settings: dict, source: str) -> None:
    """Values a suite (or the command line) may give; a dtype the device cannot run fails
    here, before anything is measured."""
    for key in ("compile", "channels_last"):
        if key in settings and not isinstance(settings[key], bool):
            raise DynbenchError(f"{source}: {key} = {settings[key]!r} is not true or false")
    if settings.get("compile_mode", "default") not in COMPILE_MODES:
        raise DynbenchError(
            f"{source}: compile_mode = {settings['compile_mode']!r} is not accepted; accepted: "
            f"{', '.join(COMPILE_MODES)}"
        )
    dtype = settings.get("dtype", "fp32")
    if dtype not in DTYPES:
        raise DynbenchError(
            f"{source}: dtype = {dtype!r} is not accepted; accepted: {', '.join(DTYPES)}"
        )
    device = settings.get("device", "cpu")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        return  # a CUDA suite is skipped here, whatever its dtype
    if not dtype_supported(dtype, device):
        raise DynbenchError(f"{source}: dtype {dtype} is not supported on {device} here")


def dtype_supported(dtype: str, device: str) -> bool:
    """Whether a small convolution runs in ``dtype`` on ``device``."""
    try:
        with torch.device(device):
            conv = nn.Conv2d(3, 4, 3).to(DTYPES[dtype])
            conv(torch.randn(1, 3, 8, 8, dtype=DTYPES[dtype]))
    except (RuntimeError, TypeError):
        return False
    return True


@dataclass
class Prepared:
    """A model and its input in the chosen dtype and layout, compiled if asked."""

    model: Callable[[torch.Tensor], object]
    x: torch.Tensor
    compile_s: float | None = None  # the first call, which compiles


def convert(
    model: nn.Module, settings: OptionSettings
) -> tuple[nn.Module, torch.dtype, torch.memory_format]:
    """``model`` in the settings' dtype and memory layout (in place), with both."""
    dtype = DTYPES[settings.dtype]
    model = model.to(dtype=dtype)
    if not settings.channels_last:
        return model, dtype, torch.contiguous_format
    return to_channels_last(model), dtype, torch.channels_last


def compiled_if_asked(
    model: nn.Module, settings: OptionSettings
) -> Callable[..., object] | nn.Module:
    if not settings.compile:
        return model
    return torch.compile(model, mode=settings.compile_mode)


def prepare(model: nn.Module, x: torch.Tensor, settings: OptionSettings) -> Prepared:
    """Apply the options to ``model`` and ``x``; with ``compile``, compile and time the
    first call (an exception here is the compiler's: the caller records it)."""
    model, dtype, layout = convert(model, settings)
    x = x.to(dtype).contiguous(memory_format=layout)
    if not settings.compile:
        return Prepared(model, x)
    compiled = compiled_if_asked(model, settings)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(x)
    return Prepared(compiled, x, round(time.perf_counter() - start, 3))
