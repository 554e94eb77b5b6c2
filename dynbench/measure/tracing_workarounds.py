"""Work-arounds for how torch.jit traces a model for fvcore, through private parts of both.

fvcore counts from a ``torch.jit`` trace. Two things of that trace are patched while
a count runs, and nowhere else:

* :func:`constant_sizes`: ``torch.Tensor.size``, ``shape`` and ``numel`` read plain
  ints instead of traced values (through torch's private tracing state);
* :func:`unscoped_trace`: fvcore's private ``jit_analysis._get_scoped_trace_graph``
  replaced by a trace without module scopes, where only whole-model figures are read.

``tests/measure/test_tracing_workarounds.py`` checks, on the installed torch and fvcore,
that the failure each one works around still occurs without it and that the count is
right with it: an upgrade that makes either unnecessary or wrong fails there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from unittest import mock

import torch
from torch import nn


@contextlib.contextmanager
def constant_sizes() -> Iterator[None]:
    """Tensor sizes read as plain ints while torch.jit traces, instead of traced values.

    A trace hands Python code every size as a 0-dim tensor, so each piece of shape
    arithmetic (output sizes, views, route rules, a cache keyed by shape) becomes
    nodes in the graph: most of the nodes, and of the trace's time, in the dynamic
    models, and ops fvcore lists as skipped that no data goes through. The counted
    ops and their shapes are the same either way; the trace is used once, at one
    input size, so it loses nothing by treating sizes as constants.
    """
    patches = [
        mock.patch.object(torch.Tensor, "size", _untraced(torch._C.TensorBase.size)),
        mock.patch.object(torch.Tensor, "shape", property(_untraced(torch._C.TensorBase.size))),
        mock.patch.object(torch.Tensor, "numel", _untraced(torch._C.TensorBase.numel)),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


def _untraced(read: Callable) -> Callable:
    """``read`` (a size query of a tensor) called with torch.jit's tracing paused."""

    def call(tensor: torch.Tensor, *args):
        state = torch._C._get_tracing_state()
        if state is None:
            return read(tensor, *args)
        torch._C._set_tracing_state(None)
        try:
            return read(tensor, *args)
        finally:
            torch._C._set_tracing_state(state)

    return call


@contextlib.contextmanager
def unscoped_trace() -> Iterator[None]:
    """fvcore traces without module scopes: every op is put in the root's scope.

    fvcore's own trace registers hooks that push each module's scope, and torch.jit
    turns those scopes into blocks and back, a large part of the trace; the ops and
    their shapes are the same without them, so the whole model's figures are too
    (only the per-module ones are lost).
    """
    from fvcore.nn import jit_analysis

    with mock.patch.object(jit_analysis, "_get_scoped_trace_graph", _unscoped_trace_graph):
        yield


def _unscoped_trace_graph(module: nn.Module, inputs, aliases) -> torch._C.Graph:
    """fvcore's ``_get_scoped_trace_graph`` without the module scopes."""
    return torch.jit._get_trace_graph(module, inputs)[0]
