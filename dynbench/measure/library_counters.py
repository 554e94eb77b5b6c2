"""The counters of the field's libraries: ``fvcore``, ``ptflops`` and ``torch``.

* ``fvcore``: ``fvcore.nn.FlopCountAnalysis`` (counts one per multiply-add; also counts
  batch norm and pooling, skips elementwise ops), from a torch.jit trace of its own;
* ``ptflops``: ``ptflops.get_model_complexity_info(backend='aten')`` (conv, mm-family
  ops and their biases; the default 'pytorch' backend misses functional convolutions);
* ``torch``: ``torch.utils.flop_counter.FlopCounterMode``, whose FLOPs are 2 per
  multiply-add.

ptflops' and torch's counters are dispatch modes: in the shared forward each is one
mode among the others (:class:`DispatchJoined`); alone, each runs through its public
entry point. Their skipped ops are the traced ops they have no formula for.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections import Counter
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from dynbench.measure.aten_ops import is_free, unhandled
from dynbench.measure.counter import Counted
from dynbench.measure.tracing_workarounds import constant_sizes, unscoped_trace

CONV_LINEAR_OPS = {"conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum"}


class DispatchJoined:
    """A library's dispatch mode in the shared forward, read by ``count`` after it."""

    def __init__(
        self, mode: TorchDispatchMode, count: Callable[[TorchDispatchMode, Counter[str]], Counted]
    ) -> None:
        self.mode, self.count = mode, count

    def __enter__(self) -> DispatchJoined:
        self.mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mode.__exit__(*exc)

    def read(self, ops: Counter[str]) -> Counted:
        return self.count(self.mode, ops)


@contextlib.contextmanager
def fvcore_analysis(model: nn.Module, x: torch.Tensor, by_module: bool = True) -> Iterator:
    """A ``FlopCountAnalysis`` whose tracing warnings and logs are silenced while it is used
    (the analysis runs lazily, on the first query, so queries belong inside the block).

    Without ``by_module`` only the whole model's figures are right (every op is put in
    the root's scope: :func:`~dynbench.measure.tracing_workarounds.unscoped_trace`).
    Either way sizes are constants in the trace (``constant_sizes``).
    """
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(constant_sizes())
        if not by_module:
            stack.enter_context(unscoped_trace())
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        yield analysis


def fvcore_madds(model: nn.Module, x: torch.Tensor, ops: Counter[str] | None = None) -> Counted:
    """fvcore's count from a trace of its own (``ops`` unused: it lists what that trace skipped)."""
    with fvcore_analysis(model, x, by_module=False) as analysis:
        total = int(analysis.total())
        skipped = {k.removeprefix("aten::"): int(v) for k, v in analysis.unsupported_ops().items()}
        extra = {
            op: int(n)
            for op, n in sorted(analysis.by_operator().items())
            if op not in CONV_LINEAR_OPS and n
        }
    skipped = {k: v for k, v in sorted(skipped.items()) if not is_free(k)}
    return Counted(total=total, skipped=skipped, extra=extra)


def ptflops_madds(model: nn.Module, x: torch.Tensor, ops: Counter[str]) -> Counted:
    from ptflops import get_model_complexity_info

    with torch.no_grad():
        macs, _ = get_model_complexity_info(
            model,
            tuple(x.shape[1:]),
            as_strings=False,
            backend="aten",
            print_per_layer_stat=False,
            verbose=False,
            input_constructor=lambda _: x,
        )
    if macs is None:
        raise RuntimeError("ptflops failed on this model")
    return Counted(total=int(macs), skipped=unhandled(ops, _ptflops_handled()))


def join_ptflops(model: nn.Module) -> DispatchJoined:
    """ptflops' own dispatch mode (what ``get_model_complexity_info`` runs the model under)."""
    from ptflops.aten_engine import FlopCounterMode

    return DispatchJoined(FlopCounterMode(), _ptflops_counted)


def _ptflops_counted(mode: TorchDispatchMode, ops: Counter[str]) -> Counted:
    return Counted(total=int(mode.complexity), skipped=unhandled(ops, _ptflops_handled()))


def _ptflops_handled() -> set[str]:
    from ptflops.aten_ops import ATEN_OPS_MAPPING

    return {op.__name__ for op in ATEN_OPS_MAPPING}


def torch_flops(model: nn.Module, x: torch.Tensor, ops: Counter[str]) -> Counted:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return _torch_counted(counter, ops)


def join_torch(model: nn.Module) -> DispatchJoined:
    from torch.utils.flop_counter import FlopCounterMode

    mode = FlopCounterMode(display=False)
    mode.mod_tracker = _WholeModel()
    return DispatchJoined(mode, _torch_counted)


def _torch_counted(mode: TorchDispatchMode, ops: Counter[str]) -> Counted:
    handled = {getattr(op, "__name__", str(op)) for op in mode.flop_registry}
    return Counted(total=mode.get_total_flops(), skipped=unhandled(ops, handled))


class _WholeModel:
    """Stands in for the module tracker of torch's ``FlopCounterMode`` when only the
    whole model's total is read: every count goes to "Global" alone, and no hook runs
    on each module call (those hooks were about half of the counter's cost)."""

    parents = ("Global",)

    def __enter__(self) -> _WholeModel:
        return self

    def __exit__(self, *exc) -> None:
        return None
