"""Where the operators' per-call kernels go in inference: two buffer mechanisms.

* The thread's shared kernel buffer (:func:`kernel_buffer`), for a kernel consumed before
  the forward returns: every operator of the thread writes the same memory, which the
  previous layer's kernel has just left in cache.
* A layer's own workspace (:func:`layer_workspace`), kept between calls, for a kernel the
  layer keeps or that must not share memory with another layer's.

Both outlive the call that made them (that is their point) and neither moves with
``model.to()``: :func:`dynbench.ops.base.release_workspaces` drops them.
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

_THREAD = threading.local()  # the shared workspaces of each thread
# From this size up a per-call kernel is written into the thread's shared buffer; below it,
# into a fresh tensor. glibc maps a freed block of several MiB afresh on the next call (page
# faults on every page); a smaller one it hands back from its heap, and a fresh tensor then
# skips the buffer's lookup, slicing and ``out=`` checks, which at batch 1 cost a small
# layer more than its kernel's arithmetic (reports/released/README.md).
SHARED_FROM_BYTES = 4 << 20


def shares_buffer(shape: tuple[int, ...], like: Tensor) -> bool:
    """Whether a per-call kernel of ``shape`` (dtype of ``like``) goes into the shared buffer."""
    return math.prod(shape) * like.element_size() >= SHARED_FROM_BYTES


def kernel_buffer(slot: str, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
    """Where a per-call kernel of ``shape`` goes (inference only): the thread's shared buffer
    for ``slot`` from :data:`SHARED_FROM_BYTES` up, else None, a fresh tensor (an op's
    ``out=None``).

    The shared buffer is consumed before the forward returns: every operator of the thread
    writes the same memory, which the previous layer's kernel has just left in cache,
    instead of a cold buffer of its own."""
    return _shared_buffer(slot, shape, like) if shares_buffer(shape, like) else None


def _shared_buffer(slot: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """The thread's buffer for ``slot``, grown to the largest request, viewed as ``shape``."""
    pool = getattr(_THREAD, "workspaces", None)
    if pool is None:
        pool = _THREAD.workspaces = {}
    numel = math.prod(shape)
    key = (slot, like.dtype, like.device)
    buffer = pool.get(key)
    if buffer is None or buffer.numel() < numel:
        with torch.inference_mode(False):
            buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
        pool[key] = buffer
    return buffer[:numel].view(shape)


def drop_shared_buffers() -> None:
    """Drop this thread's shared kernel buffers."""
    _THREAD.workspaces = {}


def layer_workspace(
    held: dict[tuple, Tensor], slot: str, shape: tuple[int, ...], like: Tensor
) -> Tensor:
    """A layer's own buffer for ``slot`` among those it ``held`` (updated here), kept
    between calls for per-call kernels (inference only; a kernel consumed within the call
    goes to :func:`kernel_buffer`).

    A freshly allocated multi-megabyte kernel costs page faults on every call
    (glibc serves it with a new mmap). Reusing one buffer per layer removes them.
    The buffer is always a normal tensor (one created under inference mode could
    not be written by a later call outside it). Consequence: one module must not
    run forward in two threads at once. A request of another shape replaces the
    slot's buffer.
    """
    key = (slot, tuple(shape), like.dtype, like.device)
    buffer = held.get(key)
    if buffer is None:
        with torch.inference_mode(False):
            buffer = torch.empty(shape, dtype=like.dtype, device=like.device)
        for old in [k for k in held if k[0] == slot]:
            del held[old]
        held[key] = buffer
    return buffer
