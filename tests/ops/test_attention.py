"""SE, CBAM and ECA: exact parameter counts, references by hand, and the ODConv paper's MAdds."""

from unittest import mock

import pytest
import torch
from torch import nn

from dynbench.measure.params import count_params
from dynbench.measure.shape_counters import conv_linear_madds
from dynbench.models import all_models, create_model
from dynbench.ops.attention import CBAM, ECA, BranchAttention, SqueezeExcite, eca_kernel_size

# Bias-free FCs with r = 16; ECA adds k weights per block, CBAM 98 (7x7 over 2 maps).
PARAMS = {
    "resnet18_se": 11_776_552,
    "resnet18_cbam": 11_777_336,
    "resnet18_eca": 11_689_548,
    "resnet50_v1_se": 28_071_976,
    "resnet50_v1_cbam": 28_073_544,
    "resnet50_v1_eca": 25_557_118,
    "resnet50_se": 28_071_976,
    "resnet50_cbam": 28_073_544,
    "resnet50_eca": 25_557_118,
    "resnet101_v1_se": 49_292_328,
    "resnet101_v1_cbam": 49_295_562,
    "resnet101_v1_eca": 44_549_331,
    "resnet101_se": 49_292_328,
    "resnet101_cbam": 49_295_562,
    "resnet101_eca": 44_549_331,
    "mobilenetv2_100_se": 3_533_288,
    "mobilenetv2_100_cbam": 3_534_954,
    "mobilenetv2_100_eca": 3_504_931,
}

# ODConv paper (Li et al., ICLR 2022), Tables 1-2: (params in M, MAdds in G) as printed.
PUBLISHED = {
    "resnet18_se": (11.78, 1.816),
    "resnet18_cbam": (11.78, 1.818),
    "resnet18_eca": (11.69, 1.816),
    "resnet50_v1_se": (28.07, 3.872),
    "resnet50_v1_cbam": (28.07, 3.886),
    "resnet50_v1_eca": (25.56, 3.870),
    "resnet101_v1_se": (49.29, 7.593),
    "resnet101_v1_cbam": (49.30, 7.617),
    "resnet101_v1_eca": (44.55, 7.590),
}

# conv+linear MAdds at 224x224 (the attention FC/conv layers included, pooling and scaling not).
CONV_LINEAR = {
    "resnet18_se": 1_814_160_384,
    "resnet18_cbam": 1_815_063_764,
    "resnet18_eca": 1_814_082_688,
    "resnet50_v1_se": 3_860_488_192,
    "resnet50_v1_cbam": 3_864_362_102,
    "resnet50_v1_eca": 3_858_061_056,
    "resnet101_v1_se": 7_574_937_600,
    "resnet101_v1_cbam": 7_581_366_270,
    "resnet101_v1_eca": 7_570_369_280,
}

# ECA's two ResNet-50/101 figures are the only ones the convention below misses (by one
# in the last printed digit): these are what it gives instead.
UNEXPLAINED = {"resnet50_v1_eca": 3.869, "resnet101_v1_eca": 7.588}


def meta_model(name: str) -> nn.Module:
    """The registered model on the meta device: counts need shapes, not weights.

    Normal initialisers on meta tensors import torch._dynamo (seconds) and initial
    values cannot change a count, so the backbones' calls to them are skipped.
    """
    with (
        torch.device("meta"),
        mock.patch.object(nn.init, "kaiming_normal_"),
        mock.patch.object(nn.init, "normal_"),
    ):
        return create_model(name).eval()


def test_every_attention_variant_is_pinned():
    registered = [i.name for i in all_models() if i.operator in ("se", "cbam", "eca")]
    assert sorted(registered) == sorted(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_params_exact(name):
    assert count_params(meta_model(name))["params"] == PARAMS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_params_match_the_paper_to_the_printed_digit(name):
    assert round(PARAMS[name] / 1e6, 2) == PUBLISHED[name][0]


def published_convention(model: nn.Module) -> tuple[int, int]:
    """(conv+linear, conv+linear + every gate multiplication + the spatial pooling).

    SE and ECA pool once (average), CBAM's channel gate twice (average and max);
    the channel-wise mean/max maps of CBAM's spatial gate are not counted.
    """
    extra = 0

    def hook(module: BranchAttention, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal extra
        parts = module.analytic_madds(tuple(inputs[0].shape), tuple(out.shape))
        poolings = 2 if isinstance(module, CBAM) else 1
        extra += parts["feature_scale"] + poolings * out.numel()

    for m in model.modules():
        if isinstance(m, BranchAttention):
            m.register_forward_hook(hook)
    conv_linear = conv_linear_madds(model, torch.empty(1, 3, 224, 224, device="meta"))
    return conv_linear, conv_linear + extra


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_madds_and_the_papers_convention(name):
    conv_linear, counted = published_convention(meta_model(name))
    assert conv_linear == CONV_LINEAR[name]
    assert round(counted / 1e9, 3) == UNEXPLAINED.get(name, PUBLISHED[name][1])


@pytest.mark.parametrize(
    "channels, k", [(16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)]
)
def test_eca_kernel_size(channels, k):
    assert eca_kernel_size(channels) == k
    assert ECA(channels).conv.kernel_size == (k,)


MODULES = [SqueezeExcite, CBAM, ECA]


def randomized(module: nn.Module) -> nn.Module:
    """Weights away from any initialiser's symmetry, so a wrong index shows."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    return module.eval()


@pytest.mark.parametrize("cls", MODULES)
@pytest.mark.parametrize("shape", [(2, 32, 5, 6), (1, 256, 7, 7), (3, 8, 1, 1)])
def test_output_keeps_the_input_shape(cls, shape):
    assert cls(shape[1])(torch.randn(shape)).shape == shape


def test_se_equals_explicit_computation():
    se = randomized(SqueezeExcite(64))
    x = torch.randn(2, 64, 5, 6)
    w1 = se.fc1.weight.view(4, 64)
    w2 = se.fc2.weight.view(64, 4)
    expected = torch.empty_like(x)
    for n in range(2):
        squeezed = x[n].sum((1, 2)) / 30
        gate = torch.sigmoid(w2 @ torch.relu(w1 @ squeezed))
        expected[n] = x[n] * gate[:, None, None]
    torch.testing.assert_close(se(x), expected)


def test_eca_equals_explicit_computation():
    eca = randomized(ECA(64))
    w = eca.conv.weight.view(3)
    x = torch.randn(2, 64, 4, 3)
    expected = torch.empty_like(x)
    for n in range(2):
        pooled = x[n].mean((1, 2))
        for c in range(64):
            # zero padding: neighbours past either end of the channel axis contribute 0
            s = sum(w[j] * pooled[c + j - 1] for j in range(3) if 0 <= c + j - 1 < 64)
            expected[n, c] = x[n, c] * torch.sigmoid(s)
    torch.testing.assert_close(eca(x), expected)


def test_cbam_equals_explicit_computation():
    cbam = randomized(CBAM(32))
    x = torch.randn(2, 32, 5, 6)
    w1, w2 = cbam.fc1.weight.view(2, 32), cbam.fc2.weight.view(32, 2)
    ws = cbam.spatial.weight.view(2, 7, 7)
    expected = torch.empty_like(x)
    for n in range(2):
        flat = x[n].reshape(32, -1)
        mlp = [w2 @ torch.relu(w1 @ d) for d in (flat.mean(1), flat.max(1).values)]
        y = x[n] * torch.sigmoid(mlp[0] + mlp[1])[:, None, None]
        maps = torch.stack([y.mean(0), y.max(0).values])
        gate = torch.zeros(5, 6)
        for i in range(5):
            for j in range(6):
                for di in range(7):
                    for dj in range(7):
                        a, b = i + di - 3, j + dj - 3
                        if 0 <= a < 5 and 0 <= b < 6:
                            gate[i, j] += (ws[:, di, dj] * maps[:, a, b]).sum()
        expected[n] = y * torch.sigmoid(gate)
    torch.testing.assert_close(cbam(x), expected)


@pytest.mark.parametrize("cls", MODULES)
def test_a_sample_does_not_depend_on_its_batch(cls):
    module = randomized(cls(64))
    x = torch.randn(4, 64, 7, 7)
    alone = module(x[1:2])
    torch.testing.assert_close(module(x)[1:2], alone)
    torch.testing.assert_close(module(x[1:3])[:1], alone)


@pytest.mark.parametrize(
    "cls, attention, scale",
    [
        # batch 2, C = 64 on 7x7; r = 16 -> 4 hidden
        (SqueezeExcite, 2 * 2 * 64 * 4, 2 * 64 * 49),
        (ECA, 2 * 64 * 3, 2 * 64 * 49),
        # the shared MLP runs on two descriptors; 7x7 conv over 2 maps at every pixel
        (CBAM, 2 * 2 * (2 * 64 * 4) + 2 * 49 * 2 * 49, 2 * 2 * 64 * 49),
    ],
)
def test_analytic_madds(cls, attention, scale):
    module = cls(64)
    x = torch.randn(2, 64, 7, 7)
    out = module(x)
    parts = module.analytic_madds(tuple(x.shape), tuple(out.shape))
    assert parts == {"conv": 0, "attention": attention, "aggregation": 0, "feature_scale": scale}
    assert module.conv_linear_madds(x, out) == attention
    # the counter takes the module's own figure, not its inner convs a second time
    assert conv_linear_madds(module, x) == attention


def test_gate_is_on_each_residual_branch():
    model = create_model("resnet18_se")
    block = model.layer1[0]
    assert isinstance(block.attention, SqueezeExcite)
    assert block.attention.fc1.in_channels == 64
    assert model.layer4[1].attention.fc2.weight.shape == (512, 32, 1, 1)
