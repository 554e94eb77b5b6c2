"""The project's compiled loops: built once from C++ on first use, with PyTorch's ops as fallback.

At batch 1 some branches are chains of tiny ops whose dispatch costs more than their work (ODConv's
attention branch, :mod:`dynbench.ops.compiled_attention`; spatial DynConv's mask-unit logits,
:mod:`dynbench.ops.compiled_mask_unit`). Each such loop's C++ source lives beside its Python
wrapper; all are built together, as one extension, by
``torch.utils.cpp_extension.load_inline`` the first time a CPU fp32 forward asks for one (tens
of seconds, then cached by torch in its extensions folder). The build needs a C++ compiler and
ninja; where it fails, or ``DYNBENCH_COMPILED=0`` is set, :func:`built` answers None (the
failure said once) and the operators run PyTorch's ops, as they do under a MAdds counter, a
``torch.jit`` trace or ``torch.compile`` (which must see the ops).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import types
import warnings
from pathlib import Path

import torch
from torch import Tensor

# DYNBENCH_COMPILED=0 keeps the compiled loops off (PyTorch's ops run)
SWITCH = "DYNBENCH_COMPILED"

_BUILT: dict[str, types.ModuleType | None] = {}  # "module": the build, or None if it failed
_ABSENT = torch.empty(0)  # what a loop reads for a tensor a layer leaves out (see operand)


def cpu_tag() -> str:
    """A short name for this CPU's model and instruction sets. The build is tuned to the CPU
    that compiles it (``-march=native``) and torch's cache is keyed by the source and flags,
    not the CPU: the tag in the build's name keeps a cache shared between machines (a home
    folder) from handing one CPU another's build."""
    described = platform.machine() + platform.processor()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        described += "".join(line for line in lines if line.startswith(("model name", "flags")))
    return hashlib.sha256(described.encode()).hexdigest()[:10]


def built() -> types.ModuleType | None:
    """The compiled module, built on the first call; None if the build fails (said once)."""
    if "module" not in _BUILT:
        # the loops' sources; imported here, as they import this module for their wrappers
        from dynbench.ops import (
            compiled_attention,
            compiled_kernel,
            compiled_mask_unit,
            compiled_unfold,
        )

        loops = (compiled_attention, compiled_kernel, compiled_mask_unit, compiled_unfold)
        try:
            from torch.utils.cpp_extension import load_inline  # imports setuptools

            _BUILT["module"] = load_inline(
                f"dynbench_compiled_{cpu_tag()}",
                cpp_sources=[loop.SOURCE for loop in loops],
                functions=[loop.FUNCTION for loop in loops],
                # the reductions vectorise only when their order may change; built per machine
                extra_cflags=["-O3", "-march=native", "-ffast-math"],
            )
        except Exception as error:  # no setuptools, compiler or ninja, a failed build
            _BUILT["module"] = None
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            warnings.warn(
                f"dynbench: the compiled loops did not build ({reason}); PyTorch's ops run instead",
                stacklevel=2,
            )
    return _BUILT["module"]


def applies(x: Tensor) -> bool:
    """Whether a compiled loop may run on ``x``: a CPU fp32 tensor no gradient is recorded
    for, the switch not off, and no one watching the ops (a counter's dispatch mode, a
    trace, a compile). Each loop checks the layout it reads itself."""
    return (
        x.is_cpu
        and x.dtype == torch.float32
        and not (x.requires_grad and torch.is_grad_enabled())
        and os.environ.get(SWITCH, "1") != "0"
        and not torch.jit.is_tracing()
        and not torch._C._len_torch_dispatch_stack()
        and not torch.compiler.is_compiling()
    )


def loops_for(x: Tensor, *companions: Tensor | None) -> types.ModuleType | None:
    """The compiled module, where a loop may run on ``x`` (:func:`applies`) and on the
    tensors it reads beside ``x`` (attentions, scales, weights, biases; None where left out),
    each of ``x``'s dtype, since the loops read one (fp32), and none wanting a gradient (a
    loop records none); None otherwise or where the build failed. The layout each loop reads
    it checks itself."""
    if not applies(x):
        return None
    grad = torch.is_grad_enabled()
    for companion in companions:
        if companion is not None and (
            companion.dtype != x.dtype or (grad and companion.requires_grad)
        ):
            return None
    return built()


def operand(tensor: Tensor | None) -> Tensor:
    """``tensor`` as a loop reads it: contiguous, or an empty tensor where it is left out."""
    return _ABSENT if tensor is None else tensor.contiguous()
