"""Forward of each operator beside a static nn.Conv2d at representative layer shapes.

Not part of the default run (marked ``bench``); run with

    .venv/bin/python -m pytest -m bench tests/benchmarks --benchmark-enable \
        --benchmark-json reports/op-bench.json

and compare with a saved run via ``--benchmark-compare=0001 --benchmark-compare-fail=median:10%``.
What the timed calls compute is checked in the default run: each operator's output against a
reference computed from its own weights (CondConv and DY-Conv written out here from the
papers' formulas, DCD and ODConv their naive paths), exact parameter counts and the analytic
MAdds of each layer at the benchmark's shapes.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynbench.measure.madds import count_madds
from dynbench.measure.params import count_params
from dynbench.ops.condconv import CondConv2d
from dynbench.ops.dcd import DCDConv2d
from dynbench.ops.dyconv import DynamicConv2d
from dynbench.ops.odconv import ODConv2d

SHAPES = {"64x56x56": (64, 56), "256x14x14": (256, 14), "512x7x7": (512, 7)}
OPERATORS = {
    "static": lambda c: nn.Conv2d(c, c, 3, 1, 1, bias=False),
    "condconv_8x": lambda c: CondConv2d(c, c, 3, 1, 1, num_kernels=8),
    "dyconv_4x": lambda c: DynamicConv2d(c, c, 3, 1, 1, num_kernels=4),
    "dcd": lambda c: DCDConv2d(c, c, 3, 1, 1),
    "odconv_1x": lambda c: ODConv2d(c, c, 3, 1, 1, num_kernels=1),
    "odconv_4x": lambda c: ODConv2d(c, c, 3, 1, 1, num_kernels=4),
}


@pytest.fixture(scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.bench
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_forward(benchmark, operator, shape, batch):
    channels, size = SHAPES[shape]
    if batch == 32 and channels == 64:
        pytest.skip("64x56x56 at batch 32 takes minutes on one thread")
    op = OPERATORS[operator](channels).eval()
    x = torch.randn(batch, channels, size, size)
    benchmark.group = f"{shape} batch {batch}"
    benchmark.extra_info.update({"operator": operator, "threads": 1})
    with torch.inference_mode():
        expected = reference(op, x)
        out = benchmark(op, x)
    assert out.shape == (batch, channels, size, size)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def reference(op: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What ``op`` must compute on ``x``, one sample at a time: a static conv as a matrix
    product of the unfolded input; CondConv's sigmoid routing and DY-Conv's softmax
    attention (temperature 1) mixing the K kernels (Eq. 1 of each paper); DCD and ODConv
    their own naive paths, which build each sample's kernel explicitly."""
    if isinstance(op, nn.Conv2d):
        columns = F.unfold(x, op.kernel_size, padding=op.padding, stride=op.stride)
        out = op.weight.flatten(1) @ columns
        return out.view(x.shape[0], op.out_channels, *x.shape[2:])
    if isinstance(op, CondConv2d | DynamicConv2d):
        pooled = x.mean((2, 3))
        if isinstance(op, CondConv2d):
            mix = torch.sigmoid(F.linear(pooled, op.router.weight, op.router.bias))
        else:
            att = op.attention
            hidden = torch.relu(pooled @ att.fc1.weight.flatten(1).T)
            mix = torch.softmax(hidden @ att.fc2.weight.flatten(1).T + att.fc2.bias, dim=1)
        kernels = torch.einsum("bk,koihw->boihw", mix, op.weight)
        return torch.cat(
            [F.conv2d(x[i : i + 1], kernels[i], None, op.stride, op.padding) for i in range(len(x))]
        )
    op.set_impl("naive")
    try:
        return op(x)
    finally:
        op.set_impl("fast")


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_each_operator_computes_its_reference_sample_by_sample(operator, shape):
    """At the benchmark's channels (a smaller map: the values, not the speed, are checked),
    batch 3 of different inputs: each sample gets its own kernel."""
    channels = SHAPES[shape][0]
    torch.manual_seed(channels)
    op = OPERATORS[operator](channels).eval()
    x = torch.randn(3, channels, 6, 6)
    with torch.inference_mode():
        out, expected = op(x), reference(op, x)
        alone = op(x[1:2])
    atol = 1e-4 * expected.abs().max().item()
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=atol)
    torch.testing.assert_close(alone, expected[1:2], rtol=1e-4, atol=atol)


def expected_params(operator: str, c: int) -> int:
    """Parameters of one c -> c 3x3 layer, from each paper's layer (no conv bias):
    K kernels and a router or attention branch; ODConv's branch is GAP -> C -> hidden
    (max(C/16, 16), no bias) -> BN -> heads for the input channels, filters, 9 positions
    and (n > 1) kernels."""
    kernel = c * c * 9
    if operator == "static":
        return kernel
    if operator == "condconv_8x":
        return 8 * kernel + c * 8 + 8  # router: C -> K linear with bias
    if operator == "dyconv_4x":
        hidden = c // 4 + 1  # the public code's int(C / 4) + 1
        return 4 * kernel + c * hidden + hidden * 4 + 4
    n = int(operator.removeprefix("odconv_").removesuffix("x"))
    hidden = max(c // 16, 16)
    heads = (hidden + 1) * (c + c + 9) + ((hidden + 1) * n if n > 1 else 0)
    return n * kernel + c * hidden + 2 * hidden + heads


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("operator", sorted(set(OPERATORS) - {"dcd"}))
def test_exact_params_of_each_layer(operator, shape):
    with torch.device("meta"):
        op = OPERATORS[operator](SHAPES[shape][0])
    assert count_params(op)["params"] == expected_params(operator, SHAPES[shape][0])


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_analytic_madds_of_each_layer(operator, shape):
    """Every operator's conv part costs what the static conv costs (B H W C_out C_in 9, as
    torch's counter counts the static layer); CondConv and DY-Conv add their router or
    attention FCs and the mixing of K kernels per sample."""
    channels, size = SHAPES[shape]
    x, batch = torch.randn(2, channels, size, size), 2
    conv = batch * size * size * channels * channels * 9
    op = OPERATORS[operator](channels).eval()
    if operator == "static":
        assert count_madds(op, x[:1]).totals["torch"] == conv // batch
        return
    parts = op.analytic_madds(tuple(x.shape), tuple(x.shape))
    assert parts["conv"] == conv
    mixing = {"condconv_8x": 8, "dyconv_4x": 4}
    if operator in mixing:
        k = mixing[operator]
        hidden = channels // 4 + 1
        branch = channels * k if k == 8 else channels * hidden + hidden * k
        assert parts == {
            "conv": conv,
            "attention": batch * branch,
            "aggregation": batch * k * channels * channels * 9,
            "feature_scale": 0,
        }
