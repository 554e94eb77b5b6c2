"""The aten ops one forward calls, and which of them a counter left out.

A counter's skipped ops are the ops the forward actually called (traced at the
dispatcher) that do arithmetic and that the counter has no formula for.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

# aten ops that move or describe data but do no arithmetic: never "skipped".
FREE_OPS = {
    "view",
    "_unsafe_view",
    "reshape",
    "t",
    "transpose",
    "permute",
    "expand",
    "squeeze",
    "unsqueeze",
    "detach",
    "alias",
    "clone",
    "contiguous",
    "slice",
    "select",
    "split",
    "split_with_sizes",
    "unbind",
    "as_strided",
    "empty",
    "empty_like",
    "zeros",
    "zeros_like",
    "ones",
    "ones_like",
    "copy_",
    "_to_copy",
    "lift_fresh",
    "flatten",
    "cat",
    "stack",
    "new_empty",
    "new_zeros",
    "fill_",
    "zero_",
    "dropout",
    "native_dropout",
    "_reshape_alias",
    "max_pool2d_with_indices",
    "max_pool2d",
    "chunk",
    "narrow",
    "index",
    "repeat",
    "unfold",
    "pad",
    "constant_pad_nd",
    "movedim",
    "view_as",
    "expand_as",
    "_local_scalar_dense",
    "set_",
    "resize_",
    "to",
    "_has_compatible_shallow_copy_type",
    "sym_size",
    "sym_stride",
    "sym_numel",
    "is_same_size",
    "mean_backward",
    "squeeze_",
    "unsqueeze_",
    "t_",
}


class OpTracer(TorchDispatchMode):
    """Records every aten op (by overload packet name) one forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[func._overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def traced_ops(model: nn.Module, x: torch.Tensor) -> Counter[str]:
    tracer = OpTracer()
    with torch.no_grad(), tracer:
        model(x)
    return tracer.calls


def is_free(op: str) -> bool:
    """Ops that do no arithmetic: views, copies, and the profiler's record_function marks."""
    op = op.removeprefix("aten::")
    return op in FREE_OPS or op.rstrip("_") in FREE_OPS or "record_function" in op


def unhandled(ops: Counter[str], handled: set[str]) -> dict[str, int]:
    """The arithmetic ops among ``ops`` (name -> calls) that are not in ``handled``."""
    return {op: n for op, n in sorted(ops.items()) if op not in handled and not is_free(op)}
