"""Weight bytes one image reads at batch 1: the memory cost MAdds do not show.

A kernel-dynamic operator reads all of its K kernels to build one image's kernel,
so at batch 1 its time follows the bytes it reads more than its multiply-adds.
"""

from __future__ import annotations

from torch import nn

from dynbench.ops.base import DynamicOp

# set on each layer of a user's operator (models/user_operator.py): the weights of the static
# conv it replaces
STATIC_WEIGHTS = "dynbench_static_weights"


def weight_reads(model: nn.Module) -> tuple[int, int]:
    """(weights one image must read, weights the static model of the same shapes reads).

    A user's operator reads every parameter it has unless it declares ``weight_count()``
    as ours do; its static counterpart is the conv it replaces."""
    ops = [m for m in model.modules() if isinstance(m, DynamicOp) or hasattr(m, STATIC_WEIGHTS)]
    inside = {id(p) for op in ops for p in op.parameters()}
    rest = sum(p.numel() for p in model.parameters() if id(p) not in inside)
    read = rest + sum(_read(op) for op in ops)
    static = rest + sum(_static(op) for op in ops)
    return read, static


def _read(op: nn.Module) -> int:
    if callable(getattr(op, "weight_count", None)):
        return int(op.weight_count())
    return sum(p.numel() for p in op.parameters())


def _static(op: nn.Module) -> int:
    if hasattr(op, STATIC_WEIGHTS):
        return int(getattr(op, STATIC_WEIGHTS))
    return int(op.static_weight_count())


def weight_bytes(model: nn.Module) -> tuple[int, int]:
    """:func:`weight_reads` in bytes, at the model's parameter precision."""
    read, static = weight_reads(model)
    parameter = next(model.parameters(), None)
    size = 4 if parameter is None else parameter.element_size()
    return read * size, static * size
