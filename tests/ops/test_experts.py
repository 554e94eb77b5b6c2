"""The experts route of the kernel-mixing convs: equal to the naive path, chosen by shape."""

import pytest
import torch

from dynbench.ops.condconv import CondConv2d
from dynbench.ops.dyconv import DynamicConv2d
from dynbench.ops.experts_route import (
    KERNEL_PASS_MADDS,
    KERNELS_OUT_OF_CACHE,
    MIN_EXPERTS_DEPTH,
    RouteSetting,
    experts_pay,
)
from dynbench.ops.kernel_mixing import set_route_setting
from dynbench.ops.odconv import CHANNEL, FILTER, KERNEL, ODConv2d

K = 4
# (cin, cout, kernel, stride, groups, bias): plain, strided, grouped, depthwise, 1x1
SHAPES = [
    (8, 12, 3, 1, 1, True),
    (8, 16, 3, 2, 1, False),
    (8, 12, 3, 1, 4, True),
    (12, 12, 3, 1, 12, True),
    (16, 24, 1, 1, 1, True),
]
BATCHES = [1, 2, K + 1, 2 * K]


def _kernel_mixing(kind: str, cin, cout, k, stride, groups, bias):
    padding = k // 2
    if kind == "condconv":
        return CondConv2d(cin, cout, k, stride, padding, groups, bias, num_kernels=K)
    if kind == "dyconv":
        return DynamicConv2d(cin, cout, k, stride, padding, groups, bias, num_kernels=K)
    # ODConv has no bias; without the spatial attention the experts route is exact
    attentions = frozenset({CHANNEL, FILTER, KERNEL})
    return ODConv2d(cin, cout, k, stride, padding, groups, K, attentions=attentions)


def _routes(op, x):
    """(naive output, experts output, the experts call's implementation)."""
    op.eval()
    with torch.no_grad():
        op.set_impl("naive")
        naive = op(x)
        op.set_impl("fast")
        op.experts = True
        experts = op(x)
    return naive, experts, op.implementation()


@pytest.mark.parametrize("kind", ["condconv", "dyconv", "odconv"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("batch", BATCHES)
def test_experts_route_equals_naive(kind, shape, batch):
    torch.manual_seed(batch * 31 + shape[0])
    op = _kernel_mixing(kind, *shape)
    if op.bias is not None:
        torch.nn.init.normal_(op.bias)
    x = torch.randn(batch, shape[0], 11, 11)
    naive, experts, impl = _routes(op, x)
    assert impl == "fast/experts"
    torch.testing.assert_close(experts, naive, rtol=1e-5, atol=1e-5)


def test_experts_route_keeps_the_gradients_of_the_mixed_route():
    torch.manual_seed(0)
    op = DynamicConv2d(8, 12, 3, 1, 1, groups=4, bias=True, num_kernels=K)
    x = torch.randn(2 * K, 8, 9, 9)
    grads = []
    for experts in (False, True):
        op.zero_grad()
        op.experts = experts
        op(x).square().sum().backward()
        grads.append([p.grad.clone() for p in (op.weight, op.bias)])
        assert op.implementation() == ("fast/experts" if experts else "fast/mixed")
    for mixed, experts in zip(*grads, strict=True):
        torch.testing.assert_close(experts, mixed, rtol=1e-5, atol=1e-5)


def test_odconv_with_a_spatial_attention_never_takes_the_experts_route():
    torch.manual_seed(0)
    op = ODConv2d(8, 12, 3, 1, 1, num_kernels=K).eval()  # all four attentions
    x = torch.randn(2 * K, 8, 9, 9)
    op.experts = True  # asked for, but a_s does not factor out of the conv
    with torch.no_grad():
        fast = op(x)
        assert op.implementation() == "fast/mixed"
        op.set_impl("naive")
        torch.testing.assert_close(fast, op(x), rtol=1e-5, atol=1e-6)


# ResNet-18's last 3x3 convs (512 -> 512 at 7x7): a 2,359,296-element kernel, 4,608 deep
LATE_3X3 = dict(positions=49, kernel_elements=512 * 512 * 9, depth=512 * 9)


def test_experts_pay_only_past_k_samples_and_past_the_cache():
    assert not experts_pay(batch=K, num_kernels=K, **LATE_3X3)
    # 5 x 2,359,296 fp32 kernel elements = 47 MB: beyond KERNELS_OUT_OF_CACHE (32 MiB)
    assert experts_pay(batch=K + 1, num_kernels=K, **LATE_3X3)
    assert experts_pay(batch=64, num_kernels=K, **LATE_3X3)
    # MobileNetV2's 960 -> 320 1x1 at 7x7: 307,200 fp32 elements, 28 samples reach the bound
    late_1x1 = dict(positions=49, kernel_elements=960 * 320, depth=960)
    assert not experts_pay(batch=27, num_kernels=K, **late_1x1)
    assert experts_pay(batch=28, num_kernels=K, **late_1x1)
    assert 28 * 960 * 320 * 4 >= KERNELS_OUT_OF_CACHE > 27 * 960 * 320 * 4


def test_experts_never_pay_with_many_kernels_many_positions_or_a_shallow_gemm():
    # CondConv's 8 kernels: (8 - 1) x 49 = 343 MAdds per element, above the kernel pass
    assert (8 - 1) * 49 > KERNEL_PASS_MADDS >= (K - 1) * 49
    assert not experts_pay(batch=64, num_kernels=8, **LATE_3X3)
    # 14 x 14 positions: (4 - 1) x 196 = 588
    assert not experts_pay(64, K, positions=196, kernel_elements=256 * 256 * 9, depth=2304)
    # 320 -> 1280 1x1: deep enough in elements, but a 320-deep per-sample GEMM
    assert MIN_EXPERTS_DEPTH > 320
    assert not experts_pay(64, K, positions=49, kernel_elements=320 * 1280, depth=320)
    # depthwise 960 at 7x7: 8,640 elements a sample, never out of cache
    assert not experts_pay(64, K, positions=49, kernel_elements=960 * 9, depth=9)


@pytest.mark.parametrize("batch, route", [(4, "fast/mixed"), (8, "fast/experts")])
def test_a_layer_takes_the_route_its_shape_calls_for(batch, route):
    torch.manual_seed(0)
    op = DynamicConv2d(512, 512, 3, 1, 1, num_kernels=K).eval()
    x = torch.randn(batch, 512, 7, 7)
    with torch.no_grad():
        fast = op(x)
        assert op.implementation() == route
        op.experts = route == "fast/mixed"  # the other route, forced
        torch.testing.assert_close(op(x), fast, rtol=1e-4, atol=1e-4)
        assert op.implementation() != route
        op.experts = None  # the shape rule again, answered from its per-shape record
        op(x)
        assert op.implementation() == route


def test_experts_route_takes_a_channels_last_batch():
    torch.manual_seed(0)
    op = DynamicConv2d(8, 12, 3, 1, 1, groups=4, bias=True, num_kernels=K).eval()
    x = torch.randn(2 * K, 8, 9, 9)
    with torch.no_grad():
        op.set_impl("naive")
        naive = op(x)
        op.set_impl("fast")
        op.experts = True
        out = op(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, naive, rtol=1e-5, atol=1e-5)


def test_with_memory_kept_the_experts_route_never_pays():
    # with memory kept the mixed route was the faster at every measured shape and batch
    # (reports/batch-sweep/routes-pinned.md)
    assert experts_pay(batch=64, num_kernels=K, **LATE_3X3)
    assert not experts_pay(batch=64, num_kernels=K, **LATE_3X3, kept=True)
    torch.manual_seed(0)
    op = DynamicConv2d(512, 512, 3, 1, 1, num_kernels=K).eval()
    x = torch.randn(8, 512, 7, 7)
    with torch.no_grad():
        op(x)
        assert op.implementation() == "fast/experts"
        # what the runner tells the model once measure.allocator.pin() keeps freed memory
        set_route_setting(op, RouteSetting(memory_kept=True))
        op(x)
        assert op.implementation() == "fast/mixed"
        set_route_setting(op, RouteSetting())  # the setting, not the process, decides
        op(x)
        assert op.implementation() == "fast/experts"


def test_the_size_bound_counts_bytes():
    # bf16 kernels take half the bytes: 2 x the fp32 batch to reach the 32 MiB bound
    late_1x1 = dict(positions=49, kernel_elements=960 * 320, depth=960)
    assert experts_pay(batch=28, num_kernels=K, **late_1x1, element_size=4)
    assert not experts_pay(batch=54, num_kernels=K, **late_1x1, element_size=2)
    assert experts_pay(batch=55, num_kernels=K, **late_1x1, element_size=2)
    assert 55 * 960 * 320 * 2 >= KERNELS_OUT_OF_CACHE > 54 * 960 * 320 * 2


@pytest.mark.parametrize("device_type", ["cuda", "meta", "mps"])
def test_off_the_cpu_the_rule_never_picks_the_experts_route(device_type):
    # glibc's mmap ceiling, the rule's reason, is the CPU's; nothing was measured elsewhere
    assert experts_pay(batch=64, num_kernels=K, **LATE_3X3)
    assert not experts_pay(batch=64, num_kernels=K, **LATE_3X3, device_type=device_type)


@pytest.mark.parametrize(
    "batch, dtype, device, route",
    [
        (5, torch.float32, "cpu", "fast/experts"),  # 47 MB of kernels
        (5, torch.bfloat16, "cpu", "fast/mixed"),  # 24 MB
        (8, torch.bfloat16, "cpu", "fast/experts"),  # 38 MB
        (8, torch.float32, "meta", "fast/mixed"),  # stands in for a GPU
        (8, torch.bfloat16, "meta", "fast/mixed"),
    ],
)
def test_a_layer_routes_by_its_input_dtype_and_device(batch, dtype, device, route):
    torch.manual_seed(0)
    with torch.device(device):
        op = DynamicConv2d(512, 512, 3, 1, 1, num_kernels=K).to(dtype).eval()
        x = torch.randn(batch, 512, 7, 7, dtype=dtype)
    with torch.no_grad():
        out = op(x)
    assert op.implementation() == route
    assert out.shape == (batch, 512, 7, 7) and out.dtype == dtype


def test_the_route_is_kept_per_dtype_and_device():
    torch.manual_seed(0)
    op = DynamicConv2d(512, 512, 3, 1, 1, num_kernels=K).eval()
    x = torch.randn(5, 512, 7, 7)
    with torch.no_grad():
        for dtype, route in [(torch.float32, "experts"), (torch.bfloat16, "mixed")] * 2:
            op.to(dtype)(x.to(dtype))  # one shape, half the bytes in bf16
            assert op.implementation() == f"fast/{route}"
        op.to("meta")(x.to("meta", torch.bfloat16))
        assert op.implementation() == "fast/mixed"
