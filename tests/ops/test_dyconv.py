"""DY-Conv: fast equals naive, exact params, temperature, analytic MAdds vs counters."""

import pytest
import torch
import torch.nn.functional as F

from dynbench.measure.madds import count_madds
from dynbench.measure.params import count_params
from dynbench.models import create_model
from dynbench.ops.dyconv import DynamicConv2d


@pytest.mark.parametrize(
    "cin, cout, k, stride, groups, bias, batch",
    [
        (3, 64, 7, 2, 1, False, 2),
        (64, 64, 3, 1, 1, False, 1),
        (64, 128, 3, 2, 1, True, 3),
        (32, 32, 3, 1, 32, False, 5),
        (64, 256, 1, 1, 1, True, 4),
        (16, 32, 3, 2, 4, False, 2),
    ],
)
def test_fast_equals_naive(cin, cout, k, stride, groups, bias, batch):
    torch.manual_seed(cin * k + batch)
    op = DynamicConv2d(cin, cout, k, stride, k // 2, groups, bias, num_kernels=4)
    if bias:
        torch.nn.init.normal_(op.bias)
    x = torch.randn(batch, cin, 20, 20)
    with torch.no_grad():
        fast = op(x)
        op.set_impl("naive")
        torch.testing.assert_close(fast, op(x), rtol=1e-5, atol=1e-6)


def test_sample_independent_of_batch():
    torch.manual_seed(0)
    op = DynamicConv2d(16, 32, 3, 1, 1)
    x = torch.randn(4, 16, 12, 12)
    with torch.no_grad():
        whole = op(x)
        for i in range(4):
            torch.testing.assert_close(op(x[i : i + 1]), whole[i : i + 1], rtol=1e-5, atol=1e-6)


def test_single_kernel_is_static_conv():
    op = DynamicConv2d(8, 16, 3, 1, 1, num_kernels=1)
    x = torch.randn(3, 8, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(op(x), F.conv2d(x, op.weight[0], padding=1))


def test_temperature_flattens_attention():
    torch.manual_seed(0)
    op = DynamicConv2d(16, 16, 3, 1, 1)
    x = torch.randn(1, 16, 8, 8)
    op.temperature = 1e6
    torch.testing.assert_close(op.attention(x), torch.full((1, 4), 0.25))
    assert op.temperature == 1e6


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet18_dyconv_4x", 45_473_012),  # ODConv table 45.47M
        ("resnet50_v1_dyconv_4x", 100_883_704),  # 100.88M
        ("mobilenetv2_100_dyconv_4x", 12_400_596),  # 12.40M
        ("mobilenetv2_075_dyconv_4x", 7_945_412),  # 7.95M
        ("mobilenetv2_050_dyconv_4x", 4_565_340),  # 4.57M
    ],
)
def test_exact_params(name, expected):
    with torch.device("meta"):
        assert count_params(create_model(name))["params"] == expected


def test_resnet50_backbone_params():
    """The ODConv paper's MS-COCO backbone figure: 98.83M without the classifier."""
    with torch.device("meta"):
        counts = count_params(create_model("resnet50_v1_dyconv_4x"))
    assert counts["params_no_classifier"] == 98_834_704


def test_odconv_code_attention_shapes():
    """Width max(int(C / 4), 16) and a batch norm: 8 input channels give 16 hidden units."""
    op = DynamicConv2d(8, 8, 3, 1, 1, num_kernels=4, hidden_offset=0, min_hidden=16, norm=True)
    assert op.attention.hidden == 16
    own = sum(p.numel() for p in op.attention.parameters())
    assert own == 8 * 16 + 2 * 16 + 16 * 4 + 4


@pytest.mark.parametrize("batch", [1, 3])
def test_fast_equals_naive_with_normed_attention(batch):
    torch.manual_seed(batch)
    op = DynamicConv2d(32, 48, 3, 2, 1, num_kernels=4, hidden_offset=0, min_hidden=16, norm=True)
    bn = op.attention.bn
    torch.nn.init.normal_(bn.weight)
    torch.nn.init.normal_(bn.bias)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    op.eval()
    x = torch.randn(batch, 32, 14, 14)
    with torch.no_grad():
        fast = op(x)
        op.set_impl("naive")
        torch.testing.assert_close(fast, op(x), rtol=1e-5, atol=1e-6)


def test_counters_versus_analytic():
    op = DynamicConv2d(64, 64, 3, 1, 1, num_kernels=4)
    x = torch.randn(1, 64, 14, 14)
    parts = op.analytic_madds(tuple(x.shape), (1, 64, 14, 14))
    assert parts == {
        "conv": 64 * 14 * 14 * 64 * 9,
        "attention": 64 * 17 + 17 * 4,
        "aggregation": 4 * 64 * 64 * 9,
        "feature_scale": 0,
    }
    result = count_madds(op, x)
    analytic = sum(parts.values())
    # torch and the analytic count cover the same ops: conv, attention 1x1s, kernel matmul
    assert result.totals["torch"] == result.totals["analytic"] == analytic
    # ptflops adds the fc2 bias (K adds); fvcore adds the global pooling (64*14*14)
    assert result.totals["ptflops"] == analytic + 4
    assert result.totals["fvcore"] == analytic + 64 * 14 * 14
    assert result.totals["conv_linear"] == parts["conv"] + parts["attention"]


def test_weight_reads_count_all_kernels():
    from torch import nn

    from dynbench.measure.weights import weight_reads

    op = DynamicConv2d(16, 32, 3, 1, 1, num_kernels=4)
    model = nn.Sequential(op, nn.Conv2d(32, 8, 1, bias=False))
    attention = sum(p.numel() for p in op.attention.parameters())
    read, static = weight_reads(model)
    assert read == 4 * 32 * 16 * 9 + attention + 32 * 8
    assert static == 32 * 16 * 9 + 32 * 8


@pytest.mark.parametrize("norm", [False, True], ids=["plain", "norm"])
@pytest.mark.parametrize("cin, batch", [(3, 2), (64, 1), (40, 3)])
def test_attention_matrix_route_equals_conv_route(cin, batch, norm):
    """The fast route (two matrix products on the pooled vector) gives the conv route's
    attention, the stem's (C_in = 3: K hidden units) included, at any temperature, with the
    batch norm in eval and (batch > 1) in training."""
    torch.manual_seed(cin + batch)
    att = DynamicConv2d(cin, 32, 3, 1, 1, num_kernels=4, min_hidden=16, norm=norm).attention
    torch.nn.init.normal_(att.fc2.bias)
    if norm:
        with torch.no_grad():
            att.bn.running_mean.normal_()
            att.bn.running_var.uniform_(0.5, 2.0)
            att.bn.weight.normal_()
    x = torch.randn(batch, cin, 11, 11)
    modes = [False, True] if norm and batch > 1 else [False]
    for training in modes:
        att.train(training)
        for temperature in (1.0, 0.3):
            att.temperature = temperature
            with torch.no_grad():
                torch.testing.assert_close(att(x), att.reference(x), rtol=1e-5, atol=1e-6)
