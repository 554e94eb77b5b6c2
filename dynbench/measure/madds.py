"""Multiply-adds (MAdds) of one forward pass at batch 1, by several counters.

Each counter answers under its own name so that disagreements stay visible:

* ``fvcore``: ``fvcore.nn.FlopCountAnalysis`` (counts one per multiply-add;
  also counts batch norm and pooling, skips elementwise ops);
* ``ptflops``: ``ptflops.get_model_complexity_info(backend='aten')`` (conv,
  mm-family ops and their biases; the default 'pytorch' backend misses
  functional convolutions);
* ``torch``: ``torch.utils.flop_counter.FlopCounterMode``, whose FLOPs are 2 per
  multiply-add and are halved here;
* ``conv_linear``: the papers' convention, multiply-adds of convolution and
  fully connected layers only, from each layer's shape. Dynamic operators report
  their own conv cost through a ``conv_linear_madds`` method.
* ``analytic``: conv_linear plus each operator's kernel aggregation and
  attention-times-feature multiplies, from its ``analytic_madds`` breakdown.

Which ops each counter skipped is found by tracing the aten ops the forward
actually calls and checking them against each counter's table of handled ops.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from unittest import mock

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from dynbench.ops.base import conv_madds, fc_madds
from dynbench.results.names import COUNTERS, MADDS_PARTS

DISAGREEMENT_THRESHOLD = 0.01

# aten ops that move or describe data but do no arithmetic: never "skipped".
_FREE_OPS = {
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
    # feature maps, whichever costs less (:func:`cheaper_route_of`)
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


class _OpTracer(TorchDispatchMode):
    """Records every aten op (by overload packet name) one forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[func._overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def traced_ops(model: nn.Module, x: torch.Tensor) -> Counter[str]:
    tracer = _OpTracer()
    with torch.no_grad(), tracer:
        model(x)
    return tracer.calls


def _is_free(op: str) -> bool:
    """Ops that do no arithmetic: views, copies, and the profiler's record_function marks."""
    op = op.removeprefix("aten::")
    return op in _FREE_OPS or op.rstrip("_") in _FREE_OPS or "record_function" in op


def _arith(ops: Counter[str], handled: set[str]) -> dict[str, int]:
    return {op: n for op, n in sorted(ops.items()) if op not in handled and not _is_free(op)}


_CONV_LINEAR_OPS = {"conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum"}


@contextlib.contextmanager
def fvcore_analysis(model: nn.Module, x: torch.Tensor, by_module: bool = True) -> Iterator:
    """A ``FlopCountAnalysis`` whose tracing warnings and logs are silenced while it is used
    (the analysis runs lazily, on the first query, so queries belong inside the block).

    Without ``by_module`` only the whole model's figures are right (every op is put in
    the root's scope): fvcore's trace then skips the hooks that push each module's
    scope, and torch.jit the work of turning those scopes into blocks and back, a
    large part of the trace; the ops and their shapes are the same. Either way sizes
    are constants in the trace (:func:`constant_sizes`).
    """
    from fvcore.nn import FlopCountAnalysis, jit_analysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(constant_sizes())
        if not by_module:
            stack.enter_context(
                mock.patch.object(jit_analysis, "_get_scoped_trace_graph", _unscoped_trace)
            )
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        yield analysis


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


def _unscoped_trace(module: nn.Module, inputs, aliases) -> torch._C.Graph:
    """fvcore's ``_get_scoped_trace_graph`` without the module scopes."""
    return torch.jit._get_trace_graph(module, inputs)[0]


def fvcore_madds(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int], dict[str, int]]:
    with fvcore_analysis(model, x, by_module=False) as analysis:
        total = int(analysis.total())
        skipped = {k.removeprefix("aten::"): int(v) for k, v in analysis.unsupported_ops().items()}
        extra = {
            op: int(n)
            for op, n in sorted(analysis.by_operator().items())
            if op not in _CONV_LINEAR_OPS and n
        }
    skipped = {k: v for k, v in sorted(skipped.items()) if not _is_free(k)}
    return total, skipped, extra


def ptflops_madds(model: nn.Module, x: torch.Tensor, ops: Counter[str]) -> tuple[int, dict]:
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
    return int(macs), _arith(ops, _ptflops_handled())


def torch_madds(model: nn.Module, x: torch.Tensor, ops: Counter[str]) -> tuple[int, dict]:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    handled = {getattr(op, "__name__", str(op)) for op in counter.flop_registry}
    return counter.get_total_flops() // 2, _arith(ops, handled)


def conv_linear_by_module(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Per-module conv/linear MAdds from layer shapes (the papers' convention)."""
    return _conv_linear_of(leaf_calls(model, x, "conv_linear_madds"))


def _conv_linear_of(calls: list[tuple]) -> dict[str, int]:
    return {name: layer_madds(module, inputs, output) for name, module, inputs, output in calls}


def analytic_breakdown(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Whole-model MAdds by part: static conv/linear layers plus each operator's own analysis.

    Operators (anything with ``analytic_madds``) report conv, attention,
    aggregation and feature_scale; plain convs and linears count as conv.
    """
    return _analytic_of(leaf_calls(model, x, "analytic_madds"))


# set on a user operator's layers that declare no analytic_madds (models/user_operator.py)
NO_ANALYTIC = "dynbench_no_analytic_madds"


class AnalyticUnavailable(Exception):
    """A layer of the model declares no analytic count: the analytic total is unknown."""


def _analytic_of(calls: list[tuple]) -> dict[str, int]:
    parts = dict.fromkeys(MADDS_PARTS, 0)
    for name, module, _, _ in calls:
        if hasattr(module, NO_ANALYTIC) and not hasattr(module, "analytic_madds"):
            raise AnalyticUnavailable(
                f"analytic count unavailable: {getattr(module, NO_ANALYTIC)} (at {name}) "
                "declares no analytic_madds(x_shape, out_shape); the generic counters ran"
            )
    for _, module, inputs, output in calls:
        if hasattr(module, "analytic_madds"):
            for key, value in module.analytic_madds(
                tuple(inputs[0].shape), tuple(output.shape)
            ).items():
                parts[key] += int(value)
        else:
            parts["conv"] += layer_madds(module, inputs, output)
    return parts


ROUTED_PARTS = ("aggregation", "feature_scale")


def cheaper_route_of(calls: list[tuple]) -> dict[str, int]:
    """aggregation and feature_scale summed over the layers, each layer's part at the
    cheaper of its two placements: on the feature maps (``analytic_madds``, what the
    operators run) or on each sample's kernel (``kernel_route_madds``, where an operator
    has it; the other operators' parts count as they are). A counting convention of the
    DCD paper, which prices its channel attention either way, whichever is less."""
    totals = dict.fromkeys(ROUTED_PARTS, 0)
    for _, module, inputs, output in calls:
        if not hasattr(module, "analytic_madds"):
            continue
        shapes = (tuple(inputs[0].shape), tuple(output.shape))
        parts = module.analytic_madds(*shapes)
        routed = getattr(module, "kernel_route_madds", None)
        kernel = routed(*shapes) if routed is not None else parts
        for part in ROUTED_PARTS:
            totals[part] += int(min(parts[part], kernel[part]))
    return totals


def leaf_calls(model: nn.Module, x: torch.Tensor, method: str) -> list[tuple]:
    """(name, module, inputs, output) for every call of a conv/linear layer or an operator
    that has ``method`` (whose own sub-layers are then not visited)."""
    calls: list[tuple] = []
    handles = _hook_leaves(model, method, calls)
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return calls


def _hook_leaves(model: nn.Module, method: str, calls: list[tuple]) -> list:
    """Forward hooks that append :func:`leaf_calls`' tuples to ``calls``; their handles."""
    names = {m: n for n, m in model.named_modules()}
    inside_custom: set[nn.Module] = set()
    for module in model.modules():
        if hasattr(module, method):
            inside_custom.update(m for m in module.modules() if m is not module)

    def hook(module: nn.Module, inputs, output) -> None:
        calls.append((names[module], module, inputs, output))

    return [
        module.register_forward_hook(hook)
        for module in model.modules()
        if module not in inside_custom
        and (
            hasattr(module, method)
            or isinstance(module, (nn.Conv2d, nn.Linear))
            or (method == "analytic_madds" and hasattr(module, NO_ANALYTIC))
        )
    ]


def layer_madds(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """MAdds of one conv or linear layer from its weight shape and output size."""
    if hasattr(module, "conv_linear_madds"):
        return int(module.conv_linear_madds(inputs[0], output))
    if isinstance(module, nn.Conv2d):
        return conv2d_madds(module.weight.shape, output.shape)
    if isinstance(module, nn.Linear):
        rows = output.numel() // module.out_features
        return fc_madds(rows, module.in_features, module.out_features)
    raise TypeError(f"no MAdds formula for {type(module).__name__}")


def conv2d_madds(
    weight_shape: torch.Size | tuple[int, ...], output_shape: torch.Size | tuple[int, ...]
) -> int:
    """:func:`dynbench.ops.base.conv_madds` from a conv's weight shape."""
    _, cin_per_group, kh, kw = weight_shape
    return conv_madds(tuple(output_shape), cin_per_group, kh, kw)


def conv_linear_madds(model: nn.Module, x: torch.Tensor) -> int:
    return sum(conv_linear_by_module(model, x).values())


COUNTER_FUNCTIONS: dict[str, Callable] = {  # fvcore traces on its own: see _run_counter
    "ptflops": ptflops_madds,
    "torch": torch_madds,
}


@dataclass
class _Forward:
    """What one forward under every shape counter saw (see :func:`shared_forward`)."""

    ops: Counter[str]
    ptflops: int
    torch: int
    torch_handled: set[str]
    conv_linear: list[tuple]
    analytic: list[tuple]


class _WholeModel:
    """Stands in for the module tracker of torch's ``FlopCounterMode`` when only the
    whole model's total is read: every count goes to "Global" alone, and no hook runs
    on each module call (those hooks were about half of the counter's cost)."""

    parents = ("Global",)

    def __enter__(self) -> _WholeModel:
        return self

    def __exit__(self, *exc) -> None:
        return None


def shared_forward(model: nn.Module, x: torch.Tensor) -> _Forward:
    """One forward under ptflops' and torch's dispatch modes and the conv_linear and
    analytic hooks at once, instead of one forward each; ptflops' mode also records
    every aten op it sees (what :func:`traced_ops` records alone).

    Nested dispatch modes each see every op: the innermost (ptflops') first, passing
    the op on unchanged, so it sees exactly the ops the model calls, as when alone.
    torch's mode is the outermost because it may decompose an op it has no formula
    for, and only it must see the decomposition.
    """
    from torch.utils.flop_counter import FlopCounterMode

    conv_linear: list[tuple] = []
    analytic: list[tuple] = []
    handles = _hook_leaves(model, "conv_linear_madds", conv_linear)
    handles += _hook_leaves(model, "analytic_madds", analytic)
    ptflops, flops = _ptflops_recording_ops(), FlopCounterMode(display=False)
    flops.mod_tracker = _WholeModel()
    try:
        with torch.no_grad(), flops, ptflops:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return _Forward(
        ops=ptflops.calls,
        ptflops=int(ptflops.complexity),
        torch=flops.get_total_flops() // 2,
        torch_handled={getattr(op, "__name__", str(op)) for op in flops.flop_registry},
        conv_linear=conv_linear,
        analytic=analytic,
    )


def _ptflops_recording_ops() -> TorchDispatchMode:
    """ptflops' dispatch mode, also counting every aten op by name in ``calls``: one mode
    where a separate op tracer would add its own dispatch to every op."""
    from ptflops.aten_engine import FlopCounterMode as PtflopsMode

    class Recording(PtflopsMode):
        def __init__(self) -> None:
            super().__init__()
            self.calls: Counter[str] = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.calls[func._overloadpacket.__name__] += 1
            return super().__torch_dispatch__(func, types, args, kwargs)

    return Recording()


def _ptflops_handled() -> set[str]:
    from ptflops.aten_ops import ATEN_OPS_MAPPING

    return {op.__name__ for op in ATEN_OPS_MAPPING}


def count_madds(
    model: nn.Module, x: torch.Tensor, counters: tuple[str, ...] = COUNTERS
) -> MaddsResult:
    """Run the chosen counters on one forward of ``model`` with input ``x`` (batch 1).

    ``eval()`` first drops what a layer caches between its own calls (DCD's folded
    constants), so the counted forward computes them, as a first call does; caches
    kept across models by shape are built without tensor ops (no counter sees them),
    so what a process measured before changes nothing. fvcore traces the model
    itself (torch.jit); the other counters share one forward (:func:`shared_forward`).
    Should that forward raise, a plain forward follows: a model that cannot run raises
    there, as itself; otherwise each counter runs alone, so that a failure costs only
    the counter that failed and says which it was.
    """
    model.eval()
    result = MaddsResult(totals={})
    try:
        shared = shared_forward(model, x)
    except Exception:  # one counter's bug, or a model that cannot run
        with torch.no_grad():
            model(x)  # the model's own error, raised as itself
        model.eval()  # what that call cached is dropped again
        shared = None  # one counter's bug: each runs on its own below
    ops = Counter() if shared is None else shared.ops
    if shared is None and {"ptflops", "torch"} & set(counters):
        ops = traced_ops(model, x)
    for name in counters:
        try:
            if shared is not None and name != "fvcore":
                _from_shared(name, shared, result)
            else:
                _run_counter(name, model, x, ops, result)
        except Exception as exc:  # a counter's own bug must not cost the other counters
            result.totals[name] = None
            result.errors[name] = f"{type(exc).__name__}: {exc}"[:300]
    return result


def _from_shared(name: str, shared: _Forward, result: MaddsResult) -> None:
    if name == "conv_linear":
        result.totals[name] = sum(_conv_linear_of(shared.conv_linear).values())
        result.skipped[name] = {}
    elif name == "analytic":
        result.breakdown = _analytic_of(shared.analytic)
        result.cheaper_route = cheaper_route_of(shared.analytic)
        result.totals[name] = sum(result.breakdown.values())
        result.skipped[name] = {}
    elif name == "ptflops":
        result.totals[name] = shared.ptflops
        result.skipped[name] = _arith(shared.ops, _ptflops_handled())
    else:
        result.totals[name] = shared.torch
        result.skipped[name] = _arith(shared.ops, shared.torch_handled)


def _run_counter(
    name: str, model: nn.Module, x: torch.Tensor, ops: Counter[str], result: MaddsResult
) -> None:
    if name == "conv_linear":
        result.totals[name] = conv_linear_madds(model, x)
        result.skipped[name] = {}
    elif name == "analytic":
        result.breakdown = analytic_breakdown(model, x)
        result.cheaper_route = cheaper_route_of(leaf_calls(model, x, "analytic_madds"))
        result.totals[name] = sum(result.breakdown.values())
        result.skipped[name] = {}
    elif name == "fvcore":
        total, skipped, extra = fvcore_madds(model, x)
        result.totals[name], result.skipped[name], result.extra[name] = total, skipped, extra
    else:
        result.totals[name], result.skipped[name] = COUNTER_FUNCTIONS[name](model, x, ops)
