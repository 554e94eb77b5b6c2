"""Keep freed memory mapped while timing, so that a call does not page-fault every time.

glibc hands a freed block above its mmap threshold back to the kernel, and trims the top of
its heap above the trim threshold; the next call's activation of the same size is then mapped
afresh and faults on every page it touches. A model with large activations (MobileNetV2's
expanded maps at batch 1) pays thousands of page faults per call that way: a cost of the
allocator's policy and of what the process did before, not of the model, and it shows as
noise between runs. A long-running server keeps its memory; a timing suite with
``allocator = "pinned"`` does the same: :func:`pin` raises glibc's mmap and trim thresholds
(``mallopt``) for the rest of the process. It is not the default: whether pinning speeds up
or slows down a model that hardly faults depends on the machine and is not settled, so only
the suites whose models fault thousands of times a call without it opt in (the sparsity
suites and the batch sweep; reports/README.md says which committed reports were timed
pinned, and every timing record keeps its page faults and ``detail.allocator``). Where the
C library is not glibc it changes nothing, and the records say ``system``.

The kernel-mixing convs' route rule depends on it (reports/batch-sweep/routes-pinned.md):
the runner tells the models it times what is in force
(:class:`dynbench.ops.experts_route.RouteSetting`); pinning changes no operator by itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
ALLOCATORS = ("pinned", "system")
_state = {"allocator": "system"}


def allocator() -> str:
    """``pinned`` once :func:`pin` took effect in this process, else ``system``."""
    return _state["allocator"]


def pin() -> str:
    """Keep every freed block mapped from now on; what is in force afterwards."""
    if _state["allocator"] != "pinned":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc: nothing to set
            return allocator()
        # glibc refuses an mmap threshold above its largest heap on some builds: 32 MiB then
        mapped = mallopt(M_MMAP_THRESHOLD, 1 << 30) or mallopt(M_MMAP_THRESHOLD, 1 << 25)
        if mapped and mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1):
            _state["allocator"] = "pinned"
    return allocator()
