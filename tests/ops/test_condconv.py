"""CondConv: fast path against the naive loop, batch independence, the static limit,
the registered models' parameter counts and their MAdds bookkeeping."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynbench.measure.params import count_params
from dynbench.measure.shape_counters import conv_linear_madds, layer_madds
from dynbench.models import create_model
from dynbench.models.layers import BlockSpec
from dynbench.models.mobilenetv2 import InvertedResidual
from dynbench.models.resnet import BasicBlock, BlockPlace
from dynbench.models.zoo_condconv import condconv_layers
from dynbench.ops.base import DynamicOp, set_impl
from dynbench.ops.condconv import CondConv2d, CondConvBlock, CondConvRouting, CondLinear
from dynbench.results.names import MADDS_PARTS

TOL = {"rtol": 1e-5, "atol": 1e-6}
BATCHES = (1, 2, 3, 4, 5)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: threads only add overhead (and contention on a busy CI box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def both_paths(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        fast = set_impl(module, "fast")(x)
        naive = set_impl(module, "naive")(x)
    return fast, naive


# (in, out, kernel, padding, groups, spatial size): pointwise, 3x3, grouped, depthwise
CONV_SHAPES = [
    (8, 16, 1, 0, 1, 9),
    (6, 10, 3, 1, 1, 11),
    (8, 12, 3, 1, 2, 8),
    (12, 12, 3, 1, 12, 10),
    (4, 6, 5, 2, 2, 7),
]


@pytest.mark.parametrize("shape", CONV_SHAPES, ids=["1x1", "3x3", "grouped", "depthwise", "5x5"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_fast_equals_naive(shape, stride, bias):
    cin, cout, k, pad, groups, size = shape
    torch.manual_seed(0)
    op = CondConv2d(cin, cout, k, stride, pad, groups, bias, num_kernels=4)
    for n in BATCHES:
        fast, naive = both_paths(op, torch.randn(n, cin, size, size))
        side = (size + 2 * pad - k) // stride + 1
        assert fast.shape == (n, cout, side, side)
        torch.testing.assert_close(fast, naive, **TOL)


@pytest.mark.parametrize("bias", [False, True])
def test_linear_fast_equals_naive(bias):
    torch.manual_seed(0)
    op = CondLinear(32, 10, bias=bias, num_kernels=8)
    for n in BATCHES:
        fast, naive = both_paths(op, torch.randn(n, 32))
        assert fast.shape == (n, 10)
        torch.testing.assert_close(fast, naive, **TOL)


def test_linear_fast_path_runs_the_experts_as_one_linear_layer():
    torch.manual_seed(0)
    op = CondLinear(16, 6, bias=True, num_kernels=4).eval()
    x = torch.randn(3, 16)
    with torch.inference_mode():
        y = op(x)
        r = torch.sigmoid(op.router(x))
        per_expert = torch.stack([x @ op.weight[k].T + op.bias[k] for k in range(4)], 1)
    assert op.implementation() == "fast"  # not the convs' shape-chosen fast/experts route
    torch.testing.assert_close(y, (r.unsqueeze(2) * per_expert).sum(1), **TOL)


def inverted_residual(stride: int) -> nn.Module:
    """One MobileNetV2 block (8 input channels) built as the registry builds it."""
    layers = condconv_layers(1, num_kernels=4)()
    out = 8 if stride == 1 else 16
    block = InvertedResidual(layers, 8, out, stride, 6, block_index=0, num_blocks=1)
    return layers.wrap_block(block, BlockSpec(out, 8, block_index=0, num_blocks=1))


def basic_block_with_downsample() -> nn.Module:
    """A ResNet block whose downsample conv stays static inside the routed block."""
    layers = condconv_layers(1, num_kernels=4)()
    downsample = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
    block = BasicBlock(layers, BlockPlace(8, 2, block_index=0, num_blocks=1), 16, downsample)
    return layers.wrap_block(block, BlockSpec(16, 8, block_index=0, num_blocks=1))


@pytest.mark.parametrize(
    "make",
    [lambda: inverted_residual(1), lambda: inverted_residual(2), basic_block_with_downsample],
    ids=["inverted-residual", "inverted-residual-s2", "basic-block"],
)
def test_shared_routing_block_fast_equals_naive(make):
    torch.manual_seed(0)
    block = make().eval()
    assert isinstance(block, CondConvBlock)
    convs = [m for m in block.modules() if isinstance(m, CondConv2d)]
    assert convs and all(c.router is None for c in convs)
    for n in BATCHES:
        fast, naive = both_paths(block, torch.randn(n, 8, 10, 10))
        torch.testing.assert_close(fast, naive, **TOL)
    # the routing is a forward argument: no conv keeps it after the block's forward
    assert not any(hasattr(c, "routing") for c in convs)


def test_shared_routing_conv_refuses_to_run_alone():
    op = CondConv2d(4, 4, 3, padding=1, shared_routing=True)
    with pytest.raises(RuntimeError, match="CondConvBlock"):
        op(torch.randn(1, 4, 5, 5))


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: CondConv2d(6, 8, 3, 2, 1, groups=2, bias=True), (6, 9, 9)),
        (lambda: CondConv2d(8, 8, 3, 1, 1, groups=8), (8, 9, 9)),
        (lambda: CondLinear(16, 5), (16,)),
        (lambda: inverted_residual(1).eval(), (8, 10, 10)),
    ],
    ids=["grouped", "depthwise", "linear", "block"],
)
@pytest.mark.parametrize("impl", ["fast", "naive"])
def test_sample_does_not_depend_on_its_batch(make, shape, impl):
    torch.manual_seed(0)
    module = set_impl(make(), impl)
    batch = torch.randn(5, *shape)
    with torch.no_grad():
        together = module(batch)
        alone = torch.cat([module(batch[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, **TOL)


def _force_routing_to_one(router: nn.Linear) -> None:
    # sigmoid(100) rounds to exactly 1.0 in fp32
    nn.init.zeros_(router.weight)
    nn.init.constant_(router.bias, 100.0)


@pytest.mark.parametrize("groups", [1, 4])
def test_one_expert_routed_to_one_is_the_static_conv(groups):
    torch.manual_seed(0)
    op = CondConv2d(8, 12, 3, 2, 1, groups=groups, bias=True, num_kernels=1)
    _force_routing_to_one(op.router)
    x = torch.randn(3, 8, 9, 9)
    expected = F.conv2d(x, op.weight[0], op.bias[0], 2, 1, 1, groups)
    for impl in ("fast", "naive"):
        with torch.no_grad():
            torch.testing.assert_close(set_impl(op, impl)(x), expected, **TOL)


def test_one_expert_routed_to_one_is_the_static_linear():
    torch.manual_seed(0)
    op = CondLinear(16, 7, bias=True, num_kernels=1)
    _force_routing_to_one(op.router)
    x = torch.randn(3, 16)
    for impl in ("fast", "naive"):
        with torch.no_grad():
            torch.testing.assert_close(
                set_impl(op, impl)(x), F.linear(x, op.weight[0], op.bias[0]), **TOL
            )


# total and without classifier; the ODConv paper prints 81.35M, 129.86M (backbone-only
# 113.46M in its detection tables), 22.88M (backbone-only 12.63M), 17.51M, 13.61M; the
# CondConv paper (reprinted by DCD) 27.5M and 15.5M
PARAMS = {
    "resnet18_condconv_8x": (81_345_120, 77_245_016),
    "resnet50_v1_condconv_8x": (129_864_800, 113_464_408),
    "resnet50_condconv_8x": (129_864_800, 113_464_408),
    "mobilenetv2_100_condconv_8x": (22_877_496, 12_627_248),
    "mobilenetv2_075_condconv_8x": (17_513_176, 7_262_928),
    "mobilenetv2_050_condconv_8x": (13_612_920, 3_362_672),
    "mobilenetv2_100_condconv_8x_os16": (27_457_768, 17_199_520),
    "mobilenetv2_050_condconv_8x_os16": (15_509_256, 5_251_008),
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_param_counts(name):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        counts = count_params(create_model(name))
    assert (counts["params"], counts["params_no_classifier"]) == PARAMS[name]


def test_analytic_parts_of_a_conv():
    op = CondConv2d(16, 32, 3, 2, 1, groups=2, num_kernels=8)
    static = nn.Conv2d(16, 32, 3, 2, 1, groups=2, bias=False)
    x = torch.randn(2, 16, 14, 14)
    out = static(x)
    parts = op.analytic_madds(tuple(x.shape), tuple(out.shape))
    assert set(parts) == set(MADDS_PARTS)
    assert parts == {
        "conv": layer_madds(static, (x,), out),
        "attention": 2 * 16 * 8,
        "aggregation": 2 * 8 * 32 * 8 * 9,
        "feature_scale": 0,
    }
    assert op.weight_count() == 8 * 32 * 8 * 9 + 16 * 8 + 8
    shared = CondConv2d(16, 32, 3, 2, 1, groups=2, num_kernels=8, shared_routing=True)
    assert shared.analytic_madds(tuple(x.shape), tuple(out.shape))["attention"] == 0
    assert shared.weight_count() == 8 * 32 * 8 * 9


def test_analytic_parts_of_the_classifier():
    op = CondLinear(512, 1000, bias=False, num_kernels=8)
    assert op.analytic_madds((1, 512), (1, 1000)) == {
        "conv": 512 * 1000,
        "attention": 512 * 8,
        "aggregation": 8 * 512 * 1000,
        "feature_scale": 0,
    }
    assert op.weight_count() == 8 * 512 * 1000 + 512 * 8 + 8


def _analytic_and_static(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, int], int]:
    """Each operator's analytic parts, and the static conv/linear layers outside them."""
    ops = [m for m in model.modules() if isinstance(m, DynamicOp)]
    inside = {m for op in ops for m in op.modules() if m is not op}
    parts = dict.fromkeys(MADDS_PARTS, 0)
    static = 0

    def op_hook(module, inputs, output):
        for key, value in module.analytic_madds(
            tuple(inputs[0].shape), tuple(output.shape)
        ).items():
            parts[key] += value

    def static_hook(module, inputs, output):
        nonlocal static
        static += layer_madds(module, inputs, output)

    handles = [op.register_forward_hook(op_hook) for op in ops]
    handles += [
        m.register_forward_hook(static_hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in inside
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return parts, static


@pytest.fixture(scope="module")
def built():
    """Each registry model these tests run, built once (ResNet-18 + CondConv is 81M params)."""
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            cache[name] = create_model(name).eval()
        return cache[name]

    return get


@pytest.mark.parametrize(
    "name, base",
    [
        ("resnet18_condconv_8x", "resnet18"),  # a static downsample conv in a routed block
        ("mobilenetv2_050_condconv_8x_os16", "mobilenetv2_050"),  # a head conv routing itself
    ],
)
def test_conv_linear_total_is_analytic_parts_plus_static_layers(built, name, base):
    model = built(name)
    x = torch.randn(1, 3, 64, 64)  # the bookkeeping does not depend on the input size
    total = conv_linear_madds(model, x)
    parts, static = _analytic_and_static(model, x)
    assert total == parts["conv"] + parts["attention"] + static
    # every conv costs what its static counterpart does; routing adds one FC per router
    routers = [
        m.fc if isinstance(m, CondConvRouting) else m.router
        for m in model.modules()
        if isinstance(m, CondConvRouting) or getattr(m, "router", None) is not None
    ]
    assert parts["attention"] == sum(r.in_features * r.out_features for r in routers)
    assert total == conv_linear_madds(built(base), x) + parts["attention"]
    # the shared routers are counted once each: one per routed block
    blocks = sum(isinstance(m, CondConvBlock) for m in model.modules())
    assert sum(isinstance(m, CondConvRouting) for m in model.modules()) == blocks


def test_resnet18_madds_reproduce_the_odconv_table(built):
    """conv+linear, and with the kernel aggregation the ODConv paper's 1.894G."""
    model = built("resnet18_condconv_8x")
    x = torch.randn(1, 3, 224, 224)
    parts, static = _analytic_and_static(model, x)
    assert conv_linear_madds(model, x) == 1_814_085_632
    assert parts["conv"] + parts["attention"] + parts["aggregation"] + static == 1_893_679_104
