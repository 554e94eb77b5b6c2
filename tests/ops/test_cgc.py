"""CGC: fast equals naive, exact params, analytic MAdds vs the counters."""

import pytest
import torch
from torch import nn

from dynbench.measure.madds import count_madds
from dynbench.measure.params import count_params
from dynbench.models import create_model
from dynbench.ops.cgc import ContextGatedConv2d


def _randomized(op: ContextGatedConv2d, seed: int) -> ContextGatedConv2d:
    """Non-trivial batch-norm statistics and affines, so the eval-mode gate is exercised."""
    gen = torch.Generator().manual_seed(seed)
    for bn in op.modules():
        if isinstance(bn, nn.BatchNorm1d):
            size = bn.num_features
            bn.weight.data = torch.rand(size, generator=gen) + 0.5
            bn.bias.data = 0.1 * torch.randn(size, generator=gen)
            bn.running_mean = 0.1 * torch.randn(size, generator=gen)
            bn.running_var = torch.rand(size, generator=gen) + 0.5
    return op.eval()


@pytest.mark.parametrize(
    "cin, cout, k, stride, bias, batch",
    [
        (3, 64, 7, 2, False, 2),  # the stem: one group of all 3 input channels
        (32, 32, 3, 1, False, 1),
        (32, 64, 3, 2, True, 3),  # 2 groups of 16 inputs, 32 outputs each
        (16, 48, 3, 1, False, 2),
    ],
)
def test_fast_equals_naive(cin, cout, k, stride, bias, batch):
    torch.manual_seed(cin + k + batch)
    op = _randomized(ContextGatedConv2d(cin, cout, k, stride, k // 2, bias), batch)
    if bias:
        nn.init.normal_(op.bias)
    x = torch.randn(batch, cin, 17, 17)
    with torch.no_grad():
        fast = op(x)
        op.set_impl("naive")
        naive = op(x)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)
    static = nn.functional.conv2d(x, op.weight[0], stride=stride, padding=k // 2)
    assert fast.shape == static.shape


def test_gate_scales_every_weight_by_a_sigmoid():
    torch.manual_seed(0)
    op = _randomized(ContextGatedConv2d(16, 16, 3, 1, 1), 0)
    with torch.no_grad():
        gate = op._gate(torch.randn(2, 16, 9, 9))
    assert gate.shape == (2, 16, 16, 9)
    assert (gate > 0).all() and (gate < 1).all() and gate.std() > 0.01


def test_layer_params():
    """Released shapes, 64 -> 128 3x3: L = 5, groups of 16 inputs mapped to 32 outputs."""
    op = ContextGatedConv2d(64, 128, 3, 2, 1)
    branch = 5 * 9 + 2 * 2 * 64 + 32 * 16 + 2 * 128 + 2 * 9 * 5
    assert count_params(op)["params"] == 128 * 64 * 9 + branch


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet50_v1_cgc", 25_589_951),  # ODConv table 25.59M
        ("resnet18_cgc", 11_721_791),  # printed 11.69M: not reproduced
    ],
)
def test_exact_params(name, expected):
    with torch.device("meta"):
        assert count_params(create_model(name))["params"] == expected


def test_counters_versus_analytic():
    op = ContextGatedConv2d(32, 32, 3, 1, 1).eval()
    x = torch.randn(1, 32, 14, 14)
    parts = op.analytic_madds(tuple(x.shape), (1, 32, 14, 14))
    branch = 32 * 9 * 5 + 32 * 5 * 9 + 5 * 32 * 16 + 32 * 5 * 9
    assert parts == {
        "conv": 32 * 14 * 14 * 32 * 9,
        "attention": branch,
        "aggregation": 32 * 32 * 9,
        "feature_scale": 0,
    }
    result = count_madds(op, x)
    assert result.totals["analytic"] == sum(parts.values())
    # torch counts the conv and the branch's four projections, not the elementwise gating
    assert result.totals["torch"] == parts["conv"] + parts["attention"]
    assert result.totals["conv_linear"] == parts["conv"] + parts["attention"]


def test_naive_path_is_eval_only():
    op = ContextGatedConv2d(16, 16, 3, 1, 1)
    op.set_impl("naive")
    with pytest.raises(RuntimeError, match="eval mode"):
        op(torch.randn(2, 16, 8, 8))


def test_rejects_pointwise_and_uneven_groups():
    with pytest.raises(ValueError, match="k > 1"):
        ContextGatedConv2d(16, 16, 1)
    with pytest.raises(ValueError, match="groups of 16"):
        ContextGatedConv2d(24, 24, 3, 1, 1)


def test_model_runs_and_is_finite():
    torch.manual_seed(0)
    model = create_model("resnet18_cgc").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
