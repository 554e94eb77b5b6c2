"""The tracing work-arounds are still needed and still right on the installed torch and fvcore.

Each test shows the failure a work-around exists for, on the libraries as they are, and
the right count with it: an upgrade that fixes the failure (the work-around is then
unnecessary) or changes what is patched (then it is wrong) fails here.
"""

import inspect

import torch
from fvcore.nn import FlopCountAnalysis, jit_analysis
from torch import nn

from dynbench.measure.library_counters import fvcore_analysis, fvcore_madds
from dynbench.measure.tracing_workarounds import constant_sizes, unscoped_trace
from dynbench.models import create_model


def _plain_fvcore(model: nn.Module, x: torch.Tensor) -> FlopCountAnalysis:
    return FlopCountAnalysis(model, x).unsupported_ops_warnings(False).tracer_warnings("none")


class ShapeArithmetic(nn.Module):
    """Reads sizes and computes with them, as the dynamic operators do."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(12, 5))

    def forward(self, x):
        batch, channels, height, width = x.shape
        return x.reshape(batch * channels, (height * width) // 1) @ self.weight


def test_sizes_are_constants_in_fvcores_trace_and_traced_again_after():
    model, x = ShapeArithmetic(), torch.randn(1, 2, 3, 4)
    counted = fvcore_madds(model, x)
    total, skipped = counted.total, counted.skipped
    assert total == 2 * 12 * 5  # the matmul: (2, 12) x (12, 5)
    assert skipped == {}  # no mul or floor_divide from the size arithmetic
    with constant_sizes():
        assert "size" in vars(torch.Tensor)
    assert not {"size", "shape", "numel"} & set(vars(torch.Tensor))  # restored
    graph = torch.jit._get_trace_graph(model, (x,))[0]
    assert "aten::mul" in {node.kind() for node in graph.nodes()}  # traced sizes again


def test_without_constant_sizes_fvcore_still_lists_size_arithmetic_as_skipped():
    model, x = ShapeArithmetic(), torch.randn(1, 2, 3, 4)
    plain = _plain_fvcore(model, x)
    assert int(plain.total()) == 2 * 12 * 5
    assert dict(plain.unsupported_ops()) == {"aten::mul": 2}  # batch * channels, height * width
    with constant_sizes():
        patched = _plain_fvcore(model, x)
        assert int(patched.total()) == 2 * 12 * 5
        assert dict(patched.unsupported_ops()) == {}


def test_fvcores_own_trace_still_scopes_every_module_and_unscoped_counts_the_same():
    """The patched function is still there with the arguments it is called with, its trace
    still carries one scope per module (what the work-around leaves out), and the whole
    model's figures are the same without them."""
    assert list(inspect.signature(jit_analysis._get_scoped_trace_graph).parameters) == [
        "module",
        "inputs",
        "aliases",
    ]
    model, x = create_model("resnet10").eval(), torch.randn(1, 3, 64, 64)
    aliases = {module: name for name, module in model.named_modules()}
    scoped = jit_analysis._get_scoped_trace_graph(model, (x,), aliases)
    assert len({node.scopeName() for node in scoped.nodes()}) > 20
    with fvcore_analysis(model, x) as analysis:
        by_module = {name: int(n) for name, n in analysis.by_module().items() if n}
        total = int(analysis.total())
    with unscoped_trace(), fvcore_analysis(model, x) as analysis:
        assert {name: int(n) for name, n in analysis.by_module().items() if n} == {"": total}
    assert by_module[""] == total and len(by_module) > 20
    assert fvcore_madds(model, x).total == total == 73_345_024
