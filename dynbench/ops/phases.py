"""The operators' phase marks: profiler scopes named by :data:`dynbench.results.names.PHASES`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch.profiler import record_function

_NO_SCOPE = contextlib.nullcontext()
_MARKING = threading.local()  # .off: phase marks switched off in this thread


def phase(name: str) -> contextlib.AbstractContextManager:
    """``record_function(name)`` while a profiler runs, else nothing.

    Entering a ``record_function`` costs about as much as a small op even with no
    profiler attached; every operator marks its phases through this one helper so
    that each pays the same (nothing) when timed and is seen the same way when profiled.
    """
    if torch.autograd._profiler_enabled() and not getattr(_MARKING, "off", False):
        return record_function(name)
    return _NO_SCOPE


@contextlib.contextmanager
def unmarked() -> Iterator[None]:
    """Profile without the phase marks, e.g. beside code that has none: under a profiler
    each mark is an event with a cost of its own, which would count against dynbench."""
    _MARKING.off = True
    try:
        yield
    finally:
        _MARKING.off = False
