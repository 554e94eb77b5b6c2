"""CGC: fast equals naive equals a reference written out from the paper, exact params,
analytic MAdds vs the counters."""

import pytest
import torch
import torch.nn.functional as F
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


def _normed(bn: nn.BatchNorm1d, values: torch.Tensor) -> torch.Tensor:
    """An eval-mode batch norm over the channel axis (0) of (C, L), written out."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (values - bn.running_mean[:, None]) * scale[:, None] + bn.bias[:, None]


def _reference_gate(op: ContextGatedConv2d, sample: torch.Tensor) -> torch.Tensor:
    """sigmoid(G(x)) of one sample (C_in, H, W) as (C_out, C_in, k^2), from the paper's
    steps with the channel interaction as an explicit sum: output channel o reads input
    group o // (C_out g / C_in) through row o % (C_out g / C_in) of the shared matrix."""
    k = op.kernel_size
    context = F.adaptive_avg_pool2d(sample, k).flatten(1)  # (C_in, k^2)
    encoded = context @ op.encode.T  # (C_in, L)
    inner = torch.relu(_normed(op.bn_input, encoded)) @ op.decode_input.T  # (C_in, k^2)
    hidden = torch.relu(_normed(op.bn_interact, encoded))
    mixed = torch.stack(
        [
            sum(
                op.interact[o % op.group_out, t] * hidden[(o // op.group_out) * op.group + t]
                for t in range(op.group)
            )
            for o in range(op.out_channels)
        ]
    )  # (C_out, L)
    outer = torch.relu(_normed(op.bn_output, mixed)) @ op.decode_output.T  # (C_out, k^2)
    return torch.sigmoid(inner[None] + outer[:, None])


def _reference(op: ContextGatedConv2d, x: torch.Tensor) -> torch.Tensor:
    """Each sample convolved (F.conv2d) with its gated kernel W(x) = sigmoid(G(x)) * W."""
    outputs = []
    for sample in x:
        kernel = (_reference_gate(op, sample) * op.weight[0].flatten(2)).view_as(op.weight[0])
        bias = None if op.bias is None else op.bias[0]
        outputs.append(F.conv2d(sample[None], kernel, bias, op.stride, op.padding))
    return torch.cat(outputs)


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
    with torch.no_grad():
        expected = _reference(op, x)
    torch.testing.assert_close(fast, expected, rtol=1e-4, atol=1e-5)
    # the gate matters: the output is not the static conv times one constant (sigmoid 0.5)
    best = (fast * static).sum() / (static * static).sum()
    assert (fast - best * static).norm() > 0.01 * fast.norm()  # 4% or more at these shapes


def test_gate_scales_every_weight_by_a_sigmoid():
    torch.manual_seed(0)
    op = _randomized(ContextGatedConv2d(16, 16, 3, 1, 1), 0)
    with torch.no_grad():
        gate = op._gate(torch.randn(2, 16, 9, 9))
    assert gate.shape == (2, 16, 16, 9)
    assert (gate > 0).all() and (gate < 1).all() and gate.std() > 0.01


def test_gate_of_each_sample_matches_the_reference_and_groups_map_as_released():
    """32 -> 64: two groups of 16 inputs, each read by 32 outputs (o < 32 group 0)."""
    torch.manual_seed(1)
    op = _randomized(ContextGatedConv2d(32, 64, 3, 1, 1), 1)
    assert (op.group, op.group_out, op.latent) == (16, 32, 5)
    x = torch.randn(2, 32, 11, 11)
    with torch.no_grad():
        gate = op._gate(x)
        for b in range(2):
            torch.testing.assert_close(gate[b], _reference_gate(op, x[b]), rtol=1e-5, atol=1e-6)
        # only group 1's inputs reach outputs 32-63 through the interaction
        hidden = x.clone()
        hidden[:, 16:] = torch.randn(2, 16, 11, 11)
        moved = op._gate(hidden) - gate
    inner_only = moved[:, :32, :16]  # outputs of group 0 from inputs of group 0: unchanged
    assert inner_only.abs().max() == 0
    assert moved[:, 32:].abs().amax(dim=(0, 2, 3)).min() > 0  # group 1's every output moved


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
    """And gates the stem and every block conv, and its fast output equals its naive one."""
    torch.manual_seed(0)
    model = create_model("resnet18_cgc").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    gated = [n for n, m in model.named_modules() if isinstance(m, ContextGatedConv2d)]
    assert len(gated) == 17 and gated[0] == "conv1"  # the stem and the 16 block 3x3 convs
    assert not any(  # 1x1 downsample convs stay static
        isinstance(m, ContextGatedConv2d) for n, m in model.named_modules() if "downsample" in n
    )
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fast = model(x)
        for m in model.modules():
            if isinstance(m, ContextGatedConv2d):
                m.set_impl("naive")
        naive = model(x)
    torch.testing.assert_close(fast, naive, rtol=1e-4, atol=1e-4 * naive.abs().max().item())
