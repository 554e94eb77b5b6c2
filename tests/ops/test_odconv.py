"""ODConv: fast path equals the naive per-sample path; exact params; analytic MAdds."""

import pytest
import torch
import torch.nn.functional as F

from dynbench.measure.madds import count_madds
from dynbench.measure.params import count_params
from dynbench.models import create_model
from dynbench.ops.base import implementations, set_impl
from dynbench.ops.odconv import CHANNEL, FILTER, KERNEL, SPATIAL, ODConv2d, input_side_pays

SHAPES = [
    # cin, cout, k, stride, groups, n, batch, hw
    (64, 64, 3, 1, 1, 4, 1, 28),
    (64, 128, 3, 2, 1, 4, 3, 28),
    (32, 32, 3, 1, 32, 1, 2, 14),
    (32, 32, 3, 2, 32, 4, 1, 14),
    (64, 256, 1, 1, 1, 1, 1, 14),
    (64, 256, 1, 1, 1, 4, 5, 7),
    (16, 32, 3, 1, 2, 3, 4, 9),
    (256, 256, 3, 1, 1, 8, 1, 7),
]


def _randomized(op: ODConv2d) -> ODConv2d:
    with torch.no_grad():
        op.attention.bn.running_mean.normal_()
        op.attention.bn.running_var.uniform_(0.5, 2.0)
    return op.eval()


@pytest.mark.parametrize("cin, cout, k, stride, groups, n, batch, hw", SHAPES)
def test_fast_equals_naive(cin, cout, k, stride, groups, n, batch, hw):
    torch.manual_seed(cin + cout + k + n + batch)
    op = _randomized(ODConv2d(cin, cout, k, stride, k // 2, groups, num_kernels=n))
    x = torch.randn(batch, cin, hw, hw)
    with torch.no_grad():
        fast = op(x)
        op.set_impl("naive")
        naive = op(x)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("groups, n", [(1, 1), (2, 1), (1, 3), (4, 3)])
def test_mixed_route_with_every_attention_on_the_kernel(groups, n):
    """At batch 1 on a large map, a_s, a_c and a_f all scale the kernel: the two smaller
    factors are multiplied first, so the kernel is rewritten twice, and the result is the
    naive path's."""
    torch.manual_seed(groups + n)
    op = _randomized(ODConv2d(8, 8, 3, 1, 1, groups, num_kernels=n))
    x = torch.randn(1, 8, 28, 28)
    assert op.weight_sides(x.shape) == (True, True)
    with torch.no_grad():
        channel, filt, spatial, _ = op.attention(x)
        factors = op.kernel_factors(channel, filt, spatial)
        fast = op(x)
        op.set_impl("naive")
        naive = op(x)
    assert len(factors) == 2  # each smaller than the kernel it scales
    assert all(f.numel() < op.weight[0].numel() for f in factors)
    assert op.route == "mixed"
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)
    # beyond batch 1 the maps are scaled: no attention goes on the batch's kernels
    assert op.weight_sides(torch.Size((2, 8, 28, 28))) == (False, False)


def test_sample_independent_of_batch():
    torch.manual_seed(0)
    op = _randomized(ODConv2d(32, 64, 3, 1, 1, num_kernels=4))
    x = torch.randn(5, 32, 14, 14)
    with torch.no_grad():
        whole = op(x)
        for i in range(5):
            torch.testing.assert_close(op(x[i : i + 1]), whole[i : i + 1], rtol=1e-5, atol=1e-6)


def test_one_kernel_with_unit_attentions_is_a_static_conv():
    torch.manual_seed(1)
    op = ODConv2d(16, 32, 3, 1, 1, num_kernels=1).eval()
    att = op.attention
    for head in (att.channel_fc, att.filter_fc, att.spatial_fc):
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.constant_(head.bias, 50.0)  # sigmoid(50) == 1 in fp32
    x = torch.randn(2, 16, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(op(x), F.conv2d(x, op.weight[0], padding=1))


ODCONV_PARAMS = {
    "resnet18_odconv_1x": 11_943_944,
    "resnet18_odconv_4x": 44_901_640,
    "resnet50_v1_odconv_1x": 28_635_112,
    "resnet50_v1_odconv_4x": 90_670_888,
    "resnet101_v1_odconv_1x": 50_818_769,
    "resnet101_v1_odconv_2x": 90_441_623,
    "mobilenetv2_100_odconv_1x": 4_940_185,
    "mobilenetv2_100_odconv_4x": 11_512_149,
    "mobilenetv2_075_odconv_1x": 3_507_113,
    "mobilenetv2_075_odconv_4x": 7_496_013,
    "mobilenetv2_050_odconv_1x": 2_425_537,
    "mobilenetv2_050_odconv_4x": 4_435_501,
    # the attention-type ablation (r = 1/4), printed 11.98M ... 45.54M
    "resnet18_odconv_1x_r4_s": 11_982_632,
    "resnet18_odconv_1x_r4_c": 12_261_896,
    "resnet18_odconv_1x_r4_f": 12_283_848,
    "resnet18_odconv_1x_r4_sc": 12_269_672,
    "resnet18_odconv_1x_r4_sf": 12_291_624,
    "resnet18_odconv_1x_r4_cf": 12_570_888,
    "resnet18_odconv_1x_r4_scf": 12_578_664,
    "resnet18_odconv_4x_r4": 45_538_536,
}


@pytest.mark.parametrize("name", sorted(ODCONV_PARAMS))
def test_exact_params(name):
    with torch.device("meta"):
        model = create_model(name)
    assert count_params(model)["params"] == ODCONV_PARAMS[name]


def test_analytic_parts_of_one_layer():
    op = ODConv2d(64, 128, 3, 2, 1, num_kernels=4).eval()
    x = torch.randn(1, 64, 28, 28)
    parts = op.analytic_madds((1, 64, 28, 28), (1, 128, 14, 14))
    assert parts["conv"] == 128 * 14 * 14 * 64 * 9
    hidden = 16  # max(int(64 / 16), 16)
    assert parts["attention"] == 64 * hidden + hidden * (64 + 128 + 9 + 4)
    assert parts["aggregation"] == 4 * 128 * 64 * 9
    assert parts["feature_scale"] == 64 * 28 * 28 + 128 * 14 * 14
    result = count_madds(op, x, ("torch", "conv_linear", "analytic"))
    assert result.totals["conv_linear"] == parts["conv"] + parts["attention"]
    # FlopCounterMode sees the conv, the heads and the kernel-mixing matmul, and skips the
    # elementwise attention multiplies (spatial on weights, channel/filter on maps).
    assert result.totals["torch"] == parts["conv"] + parts["attention"] + parts["aggregation"]
    assert "mul" in result.skipped["torch"]
    assert result.totals["analytic"] == sum(parts.values())


def test_workspaces_survive_switching_between_inference_mode_and_no_grad():
    torch.manual_seed(3)
    op = _randomized(ODConv2d(16, 16, 3, 1, 1, num_kernels=4))
    x = torch.randn(1, 16, 8, 8)
    with torch.inference_mode():
        first = op(x)
    with torch.no_grad():
        second = op(x)
    with torch.inference_mode():
        third = op(x * 2)
    torch.testing.assert_close(first, second)
    op.set_impl("naive")
    with torch.no_grad():
        torch.testing.assert_close(third, op(x * 2), rtol=1e-5, atol=1e-6)


SUBSETS = [
    frozenset({SPATIAL}),
    frozenset({CHANNEL}),
    frozenset({FILTER}),
    frozenset({SPATIAL, FILTER}),
    frozenset({CHANNEL, FILTER, KERNEL}),
    frozenset({KERNEL}),
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("attentions", SUBSETS, ids=lambda a: "+".join(sorted(a)))
def test_attention_subsets_fast_equals_naive(attentions, batch):
    torch.manual_seed(batch)
    n = 3 if KERNEL in attentions else 1
    op = ODConv2d(16, 24, 3, 1, 1, num_kernels=n, reduction=1 / 4, attentions=attentions)
    op = _randomized(op)
    att = op.attention
    present = {
        SPATIAL: att.spatial_fc,
        CHANNEL: att.channel_fc,
        FILTER: att.filter_fc,
        KERNEL: att.kernel_fc,
    }
    assert {name for name, fc in present.items() if fc is not None} == attentions
    x = torch.randn(batch, 16, 10, 10)
    with torch.no_grad():
        fast = op(x)
        op.set_impl("naive")
        naive = op(x)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)
    parts = op.analytic_madds(tuple(x.shape), tuple(fast.shape))
    assert (parts["feature_scale"] > 0) == bool(attentions & {CHANNEL, FILTER})


def test_attentions_must_be_known():
    with pytest.raises(ValueError):
        ODConv2d(8, 8, 3, 1, 1, attentions=frozenset({"temporal"}))
    with pytest.raises(ValueError):
        ODConv2d(8, 8, 3, 1, 1, num_kernels=2, attentions=frozenset({SPATIAL}))


@pytest.mark.parametrize("name", ["resnet18_odconv_1x_r4_s", "resnet18_odconv_1x_r4_cf"])
def test_ablation_model_fast_equals_naive(name):
    model = create_model(name).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        set_impl(model, "fast")
        fast = model(x)
        set_impl(model, "naive")
        naive = model(x)
    torch.testing.assert_close(fast, naive, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize(
    "cin, cout, groups, attentions",
    [(16, 24, 1, a) for a in SUBSETS] + [(24, 24, 24, SUBSETS[-1]), (24, 48, 2, SUBSETS[-1])],
    ids=lambda a: "+".join(sorted(a)) if isinstance(a, frozenset) else str(a),
)
def test_attention_matrix_route_equals_conv_route(cin, cout, groups, attentions, training):
    """The fast route (pooled vector, stacked heads, one sigmoid) gives the conv route's
    attentions and, in training, the same gradients."""
    torch.manual_seed(cin + cout + groups + len(attentions))
    n = 3 if KERNEL in attentions else 1
    op = ODConv2d(cin, cout, 3, 1, 1, groups, num_kernels=n, reduction=1 / 4, attentions=attentions)
    att = _randomized(op).attention
    with torch.no_grad():
        for p in att.parameters():
            p.normal_()
    att.temperature = 0.7
    att.train(training)
    x = torch.randn(3, cin, 9, 9)
    fast, reference = att(x), att.reference(x)
    assert [a is None for a in fast] == [a is None for a in reference]
    present = [(a, b) for a, b in zip(fast, reference, strict=True) if a is not None]
    for a, b in present:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if training:
        weights = [torch.randn_like(a) for a, _ in present]
        params = list(att.parameters())

        def grads(outputs: list[torch.Tensor]) -> tuple:
            loss = sum((o * w).sum() for o, w in zip(outputs, weights, strict=True))
            return torch.autograd.grad(loss, params, allow_unused=True)

        fast_grads, reference_grads = grads([a for a, _ in present]), grads([b for _, b in present])
        for g_fast, g_ref in zip(fast_grads, reference_grads, strict=True):
            assert (g_fast is None) == (g_ref is None)
            if g_fast is not None:
                torch.testing.assert_close(g_fast, g_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "cin, cout, groups, attentions",
    [(16, 24, 1, a) for a in SUBSETS] + [(24, 24, 24, SUBSETS[-1]), (24, 48, 2, SUBSETS[-1])],
    ids=lambda a: "+".join(sorted(a)) if isinstance(a, frozenset) else str(a),
)
def test_folded_attention_equals_conv_route_and_follows_changes(cin, cout, groups, attentions):
    """In eval without autograd the branch runs folded (batch norm in the squeeze, heads
    stacked, temperature divided in); it gives the released route's attentions, and again
    after a weight, a statistic or the temperature changes."""
    torch.manual_seed(cin + cout + groups)
    n = 3 if KERNEL in attentions else 1
    op = ODConv2d(cin, cout, 3, 1, 1, groups, num_kernels=n, reduction=1 / 4, attentions=attentions)
    att = _randomized(op).attention
    x = torch.randn(3, cin, 9, 9)

    def check() -> None:
        with torch.no_grad():
            folded, reference = att(x), att.reference(x)
        assert att._folded is not None  # the folded branch ran
        assert [a is None for a in folded] == [a is None for a in reference]
        for a, b in zip(folded, reference, strict=True):
            if a is not None:
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

    check()
    with torch.no_grad():
        for p in att.parameters():
            p.normal_()
    check()
    att.temperature = 0.6
    check()
    with torch.no_grad():
        att.bn.running_mean.add_(1.0)
    check()


INPUT_SHAPES = [
    # cin, cout, k, stride, groups, n, batch, hw
    (64, 256, 3, 1, 1, 1, 1, 7),
    (64, 128, 3, 2, 1, 1, 3, 8),
    (64, 64, 3, 1, 1, 4, 1, 7),
    (32, 48, 3, 2, 1, 3, 2, 9),
    (16, 32, 3, 1, 2, 3, 4, 9),
    (32, 32, 3, 1, 32, 1, 2, 6),
    (24, 40, 5, 1, 1, 1, 2, 8),
]


@pytest.mark.parametrize("cin, cout, k, stride, groups, n, batch, hw", INPUT_SHAPES)
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_input_route_equals_naive(cin, cout, k, stride, groups, n, batch, hw, grad):
    """The input route (unfolded input scaled by a_s x a_c, static or mixed kernels, a_f on
    the output) computes the naive path's output, and the record says it ran."""
    torch.manual_seed(cin + cout + k + n + batch)
    op = _randomized(ODConv2d(cin, cout, k, stride, k // 2, groups, num_kernels=n))
    op.input_side = True
    x = torch.randn(batch, cin, hw, hw)
    with torch.set_grad_enabled(grad):
        fast = op(x)
    assert op.implementation() == "fast/input"
    with torch.no_grad():
        op.set_impl("naive")
        naive = op(x)
    assert op.implementation() == "naive"
    torch.testing.assert_close(fast.detach(), naive, rtol=1e-5, atol=1e-6)
    assert fast.is_contiguous()


@pytest.mark.parametrize("attentions", SUBSETS, ids=lambda a: "+".join(sorted(a)))
def test_input_route_with_attention_subsets_equals_naive(attentions):
    torch.manual_seed(len(attentions))
    n = 3 if KERNEL in attentions else 1
    op = ODConv2d(16, 24, 3, 1, 1, num_kernels=n, reduction=1 / 4, attentions=attentions)
    op = _randomized(op)
    op.input_side = True
    x = torch.randn(2, 16, 10, 10)
    with torch.no_grad():
        fast = op(x)
        route = op.implementation()
        op.set_impl("naive")
        naive = op(x)
    # the input route is for layers with a spatial attention; others keep theirs
    assert route == ("fast/input" if SPATIAL in attentions else "fast/mixed")
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)


def test_input_route_chosen_by_the_rule_on_deep_low_resolution_layers():
    assert input_side_pays(out_channels=512, positions=49)
    assert input_side_pays(out_channels=196, positions=49)
    assert not input_side_pays(out_channels=195, positions=49)
    assert not input_side_pays(out_channels=256, positions=196)
    assert not input_side_pays(out_channels=960, positions=49, groups=960)  # depthwise
    torch.manual_seed(0)
    late = _randomized(ODConv2d(64, 512, 3, 1, 1, num_kernels=1))
    early = _randomized(ODConv2d(64, 64, 3, 1, 1, num_kernels=1))
    with torch.no_grad():
        late(torch.randn(1, 64, 7, 7))
        early(torch.randn(1, 64, 28, 28))
    assert late.implementation() == "fast/input"
    assert early.implementation() == "fast/mixed"
    late.input_side = False  # forced off: the kernel route, recorded as such
    with torch.no_grad():
        late(torch.randn(1, 64, 7, 7))
    assert late.implementation() == "fast/mixed"


def test_input_route_in_a_model_is_recorded():
    model = create_model("resnet18_odconv_1x").eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    counts = implementations(model)
    # layer4's 3x3 convs (512 channels on 7 x 7) take the input route
    assert counts.get("fast/input", 0) == 4
    assert sum(counts.values()) == 16
    model = create_model("mobilenetv2_100_odconv_1x").eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    # no dense 3x3 ODConv layer; the depthwise ones keep the kernel route
    assert "fast/input" not in implementations(model)


def test_folded_attention_follows_load_state_dict_and_refold():
    torch.manual_seed(3)
    op = _randomized(ODConv2d(16, 32, 3, 1, 1, num_kernels=2, reduction=1 / 4))
    other = _randomized(ODConv2d(16, 32, 3, 1, 1, num_kernels=2, reduction=1 / 4))
    with torch.no_grad():
        for p in other.attention.parameters():
            p.normal_()
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        op.attention(x)  # folded and kept
        op.load_state_dict(other.state_dict(), assign=True)  # new tensors, not copies
        for a, b in zip(op.attention(x), other.attention.reference(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        op.attention.kernel_fc.bias = torch.nn.Parameter(torch.randn(2))
        op.attention.refold()
        for a, b in zip(op.attention(x), op.attention.reference(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
