"""What every operator shares: phase scopes that cost nothing unless a profiler runs,
the same per-sample convolution, and a record of which implementation ran."""

import pytest
import torch
from torch.autograd.profiler import record_function

from dynbench.models import create_model
from dynbench.ops.base import broadcast_shape, implementations, set_impl
from dynbench.ops.buffers import SHARED_FROM_BYTES, shares_buffer
from dynbench.ops.cgc import ContextGatedConv2d
from dynbench.ops.condconv import CondConv2d, CondLinear
from dynbench.ops.dcd import DCDConv2d
from dynbench.ops.dcd_linear import DCDLinear
from dynbench.ops.dyconv import DynamicConv2d
from dynbench.ops.kernel_mixing import KernelDynamicConv
from dynbench.ops.odconv import ODConv2d
from dynbench.ops.phases import unmarked

OPERATORS = {
    "condconv": (lambda: CondConv2d(8, 8, 3, 1, 1, num_kernels=4), (1, 8, 6, 6)),
    "condlinear": (lambda: CondLinear(8, 4, num_kernels=4), (1, 8)),
    "dyconv": (lambda: DynamicConv2d(8, 8, 3, 1, 1), (1, 8, 6, 6)),
    "odconv": (lambda: ODConv2d(8, 8, 3, 1, 1, num_kernels=4), (1, 8, 6, 6)),
    "dcd": (lambda: DCDConv2d(8, 8, 3, 1, 1), (1, 8, 6, 6)),
    "dcdlinear": (lambda: DCDLinear(8, 4, latent_dim=4, squeeze=4), (1, 8)),
}


@pytest.fixture
def scopes_entered(monkeypatch):
    """Counts every record_function scope entered, profiler or not."""
    entered = []
    original = record_function.__enter__

    def counting(self):
        entered.append(self.name)
        return original(self)

    monkeypatch.setattr(record_function, "__enter__", counting)
    return entered


@pytest.mark.parametrize("impl", ["fast", "naive"])
@pytest.mark.parametrize("name", OPERATORS)
def test_no_phase_scope_without_a_profiler(name, impl, scopes_entered):
    make, shape = OPERATORS[name]
    op = make().eval()
    op.set_impl(impl)
    with torch.inference_mode():
        op(torch.randn(shape))
    assert scopes_entered == []  # every operator pays the same: nothing


@pytest.mark.parametrize("name", OPERATORS)
def test_every_operator_marks_its_phases_when_profiled(name):
    make, shape = OPERATORS[name]
    op = make().eval()
    with torch.profiler.profile() as prof, torch.no_grad():
        op(torch.randn(shape))
    names = {event.name for event in prof.events()}
    assert {"attention", "aggregation", "conv"} <= names


@pytest.mark.parametrize("name", OPERATORS)
def test_no_phase_mark_when_profiled_unmarked(name):
    make, shape = OPERATORS[name]
    op = make().eval()
    with torch.profiler.profile() as prof, torch.no_grad(), unmarked():
        op(torch.randn(shape))
    names = {event.name for event in prof.events()}
    assert not {"attention", "aggregation", "conv"} & names
    assert any(name.startswith("aten::") for name in names)  # the ops themselves still seen


def test_implementations_name_the_path_and_the_dcd_route():
    model = create_model("resnet10_dcd").eval()
    with torch.inference_mode():
        model(torch.randn(1, 3, 64, 64))
    routes = implementations(model)
    # 8 block convs and the DCD classifier; early convs form the kernel, the late ones and
    # the classifier apply the residual to the feature maps
    assert set(routes) == {"fast/fold-kernel", "fast/fold-feature-maps"}
    assert sum(routes.values()) == 9 and routes["fast/fold-kernel"] >= 1
    set_impl(model, "naive")
    assert implementations(model) == {"naive": 9}
    model.train()
    set_impl(model, "fast")
    model(torch.randn(2, 3, 64, 64))
    assert implementations(model) == {"fast/unfolded": 9}
    assert implementations(create_model("resnet10")) == {}


def test_inference_mixes_large_kernels_into_one_kept_buffer():
    torch.manual_seed(0)
    # 1.18M weights: 4.7 MB, above SHARED_FROM_BYTES
    op = DynamicConv2d(256, 512, 3, 1, 1, num_kernels=2).eval()
    assert shares_buffer((1, op.weight[0].numel()), op.weight)
    coefficients = torch.softmax(torch.randn(1, 2), 1)
    with torch.inference_mode():
        first = op.mix_kernels(coefficients, op.weight)
        second = op.mix_kernels(coefficients.flip(1), op.weight)
    assert first.data_ptr() == second.data_ptr()
    expected = coefficients[0, 1] * op.weight[0] + coefficients[0, 0] * op.weight[1]
    torch.testing.assert_close(second.view_as(expected), expected.detach(), rtol=1e-5, atol=1e-6)


def test_inference_mixes_small_kernels_into_fresh_tensors():
    torch.manual_seed(0)
    op = DynamicConv2d(64, 64, 3, 1, 1, num_kernels=2).eval()  # 36,864 weights: 147 KB
    assert not shares_buffer((1, op.weight[0].numel()), op.weight)
    coefficients = torch.softmax(torch.randn(1, 2), 1)
    with torch.inference_mode():
        first = op.mix_kernels(coefficients, op.weight)
        second = op.mix_kernels(coefficients.flip(1), op.weight)
    # two live results: a shared buffer would have given both the same memory
    assert first.data_ptr() != second.data_ptr()
    assert first.untyped_storage().nbytes() == first.numel() * first.element_size()
    expected = coefficients[0, 1] * op.weight[0] + coefficients[0, 0] * op.weight[1]
    torch.testing.assert_close(second.view_as(expected), expected.detach(), rtol=1e-5, atol=1e-6)


def test_shares_buffer_from_four_mebibytes():
    like = torch.empty(0)
    assert SHARED_FROM_BYTES == 4 << 20
    assert shares_buffer((1, 1 << 20), like)  # exactly 4 MiB of fp32
    assert not shares_buffer((1, (1 << 20) - 1), like)
    assert shares_buffer((1, 1 << 19), torch.empty(0, dtype=torch.float64))


@pytest.mark.parametrize("op", [DynamicConv2d(4, 4, 3, 1, 1), ODConv2d(4, 4, 3, 1, 1)])
def test_the_temperature_is_the_attention_branchs(op):
    assert op.temperature == 1.0
    op.temperature = 0.3
    assert op.attention.temperature == 0.3 and op.temperature == 0.3


@pytest.mark.parametrize("op", [CondConv2d(4, 4, 3, 1, 1), ContextGatedConv2d(4, 4, 3, 1, 1)])
def test_operators_without_an_attention_temperature_offer_none(op):
    # a kernel-mixing conv has no temperature of its own: CondConv's sigmoid routing and
    # CGC's gate have none
    assert not hasattr(KernelDynamicConv, "temperature")
    assert not hasattr(type(op), "temperature")
    with pytest.raises(AttributeError, match="has no attribute 'temperature'"):
        op.temperature  # noqa: B018


@pytest.mark.parametrize(
    "a, b",
    [
        ((1, 64, 32, 3, 3), (1, 1, 1, 3, 3)),
        ((4, 64, 1, 1, 1), (1, 64, 32, 3, 3)),
        ((64, 32, 3, 3), (1, 1, 32, 1, 1)),
        ((32, 1, 3, 3), (3, 3)),
        ((5,), (2, 3, 1)),
        ((), (2, 3)),
    ],
)
def test_broadcast_shape_agrees_with_torch(a, b):
    assert broadcast_shape(a, b) == tuple(torch.broadcast_shapes(a, b))
    assert broadcast_shape(b, a) == tuple(torch.broadcast_shapes(b, a))
