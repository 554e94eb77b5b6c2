"""Multiply-adds (MAdds) of one forward pass at batch 1, by several counters.

Each counter answers under its own name so that disagreements stay visible:
``conv_linear`` and ``analytic`` count from layer shapes (:mod:`.shape_counters`),
``fvcore``, ``ptflops`` and ``torch`` are the field's libraries
(:mod:`.library_counters`). Every counter is one :class:`~.counter.MaddsCounter` in
:data:`MADDS_COUNTERS`; adding one is an entry there (its name in
``results.names.COUNTERS``, the vocabulary of what a record carries) and its function.

Which ops each counter skipped is found by tracing the aten ops the forward
actually calls and checking them against each counter's table of handled ops.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from dynbench.measure.aten_ops import OpTracer, traced_ops
from dynbench.measure.counter import FLOPS_UNIT, Counted, Joined, MaddsCounter
from dynbench.measure.library_counters import (
    fvcore_madds,
    join_ptflops,
    join_torch,
    ptflops_madds,
    torch_flops,
)
from dynbench.measure.shape_counters import join_analytic, join_conv_linear
from dynbench.results.names import COUNTERS

DISAGREEMENT_THRESHOLD = 0.01

# Every counter, in the report's column order (results.names.COUNTERS)
MADDS_COUNTERS: dict[str, MaddsCounter] = {
    counter.name: counter
    for counter in (
        MaddsCounter("conv_linear", join=join_conv_linear),
        MaddsCounter("analytic", join=join_analytic),
        MaddsCounter("fvcore", alone=fvcore_madds),  # traces the model itself (torch.jit)
        MaddsCounter("ptflops", join=join_ptflops, alone=ptflops_madds),
        # outermost: torch's mode decomposes an op it has no formula for
        MaddsCounter("torch", join=join_torch, alone=torch_flops, unit=FLOPS_UNIT, outermost=True),
    )
}


@dataclass
class MaddsResult:
    """The totals of every counter and what each one left out."""

    totals: dict[str, int | None]  # None: the counter failed on this model (see errors)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    # MAdds a counter attributes to ops other than convolution and matrix products
    extra: dict[str, dict[str, int]] = field(default_factory=dict)
    # the analytic method's parts: conv, attention, aggregation, feature_scale
    breakdown: dict[str, int] = field(default_factory=dict)
    # aggregation and feature_scale with each layer's products counted on its kernel or its
    # feature maps, whichever costs less (shape_counters.cheaper_route_of)
    cheaper_route: dict[str, int] = field(default_factory=dict)

    @property
    def spread(self) -> float:
        """(max - min) / max over the counters' totals."""
        values = [v for v in self.totals.values() if v]
        if not values:
            return 0.0
        return (max(values) - min(values)) / max(values)

    @property
    def disagree(self) -> bool:
        return self.spread > DISAGREEMENT_THRESHOLD

    def add(self, counter: MaddsCounter, counted: Counted) -> None:
        """One counter's findings, its total in MAdds."""
        self.totals[counter.name] = counter.madds(counted)
        self.skipped[counter.name] = counted.skipped
        if counted.extra is not None:
            self.extra[counter.name] = counted.extra
        if counted.breakdown is not None:
            self.breakdown = counted.breakdown
        if counted.cheaper_route is not None:
            self.cheaper_route = counted.cheaper_route


@dataclass
class _Forward:
    """What one forward under every joined counter saw (see :func:`shared_forward`)."""

    ops: Counter[str]
    joined: dict[str, Joined]


def shared_forward(model: nn.Module, x: torch.Tensor, counters: Sequence[MaddsCounter]) -> _Forward:
    """One forward under every counter of ``counters`` that joins (their hooks and
    dispatch modes at once, :func:`_forward_under`) instead of one forward each."""
    return _forward_under(model, x, [c for c in counters if c.join is not None])


def _forward_under(model: nn.Module, x: torch.Tensor, joining: list[MaddsCounter]) -> _Forward:
    """A forward under each of ``joining`` and an op tracer recording every aten op.

    Nested dispatch modes each see every op: the one entered last first, passing the
    op on unchanged. The tracer is entered last, so it sees exactly the ops the model
    calls, as when alone; a counter whose mode may decompose an op (``outermost``) is
    entered first, so that only it sees the decomposition.
    """
    joined = {c.name: c.join(model) for c in sorted(joining, key=lambda c: not c.outermost)}
    tracer = OpTracer()
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        for part in joined.values():
            stack.enter_context(part)
        stack.enter_context(tracer)
        model(x)
    return _Forward(ops=tracer.calls, joined=joined)


def count_madds(
    model: nn.Module, x: torch.Tensor, counters: tuple[str, ...] = COUNTERS
) -> MaddsResult:
    """Run the chosen counters on one forward of ``model`` with input ``x`` (batch 1).

    ``eval()`` first drops what a layer caches between its own calls (DCD's folded
    constants), so the counted forward computes them, as a first call does; caches
    kept across models by shape are built without tensor ops (no counter sees them),
    so what a process measured before changes nothing. The counters that join share
    one forward (:func:`shared_forward`); the others (fvcore, which traces the model
    itself) count on their own. Should that forward raise, a plain forward follows:
    a model that cannot run raises there, as itself; otherwise each counter runs
    alone, so that a failure costs only the counter that failed and says which it was.
    """
    unknown = [name for name in counters if name not in MADDS_COUNTERS]
    if unknown:
        raise ValueError(f"unknown MAdds counter(s) {unknown}; accepted: {list(MADDS_COUNTERS)}")
    chosen = [MADDS_COUNTERS[name] for name in counters]
    model.eval()
    result = MaddsResult(totals={})
    try:
        shared = shared_forward(model, x, chosen)
    except Exception:  # one counter's bug, or a model that cannot run
        with torch.no_grad():
            model(x)  # the model's own error, raised as itself
        model.eval()  # what that call cached is dropped again
        shared = None  # one counter's bug: each runs on its own below
    # on their own, the counters read the ops of the first forward after eval(), as shared
    ops = shared.ops if shared is not None else traced_ops(model, x)
    for counter in chosen:
        try:
            if shared is not None and counter.name in shared.joined:
                counted = shared.joined[counter.name].read(ops)
            else:
                counted = _alone(counter, model, x, ops)
            result.add(counter, counted)
        except Exception as exc:  # a counter's own bug must not cost the other counters
            result.totals[counter.name] = None
            result.errors[counter.name] = f"{type(exc).__name__}: {exc}"[:300]
    return result


def _alone(counter: MaddsCounter, model: nn.Module, x: torch.Tensor, ops: Counter[str]) -> Counted:
    """``counter`` on a forward of its own: its ``alone``, or a forward with only itself
    joined."""
    if counter.alone is not None:
        return counter.alone(model, x, ops)
    forward = _forward_under(model, x, [counter])
    return forward.joined[counter.name].read(forward.ops)
