"""The static backbones equal torchvision's parameter counts and MAdds exactly."""

import pytest
import torch

from dynbench.measure.params import count_params
from dynbench.measure.shape_counters import conv_linear_madds
from dynbench.models import create_model
from dynbench.models.resnet import StemPool

TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet50_v1": 25_557_032,
    "resnet101": 44_549_160,
    "resnet101_v1": 44_549_160,
    "mobilenetv2_100": 3_504_872,
    "mobilenetv2_075": 2_636_424,
    "mobilenetv2_050": 1_968_680,
    "mobilenetv2_035": 1_677_128,
}

CONV_LINEAR_MADDS = {
    "resnet18": 1_814_073_344,
    "resnet34": 3_663_761_408,
    "resnet50": 4_089_184_256,
    "resnet50_v1": 3_857_973_248,
    "resnet101": 7_801_405_440,
    "resnet101_v1": 7_570_194_432,
    "mobilenetv2_100": 300_774_272,
    "mobilenetv2_075": 209_069_792,
    "mobilenetv2_050": 97_131_840,
    "mobilenetv2_035": 59_285_808,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_params_equal_torchvision(name):
    assert count_params(create_model(name))["params"] == TORCHVISION_PARAMS[name]


def test_resnet10_is_one_basic_block_per_stage():
    model = create_model("resnet10")
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3, model.layer4)] == [1] * 4
    # ResNet-18 minus one BasicBlock per stage: 11,689,512 - 6,270,720
    assert count_params(model)["params"] == 5_418_792


def test_params_without_classifier_drop_the_fc():
    counts = count_params(create_model("resnet18"))
    assert counts["params_no_classifier"] == 11_689_512 - (512 * 1000 + 1000)
    assert counts["params_trainable"] == counts["params"]


@pytest.mark.parametrize("name", sorted(CONV_LINEAR_MADDS))
def test_conv_linear_madds(name):
    model = create_model(name).eval()
    assert conv_linear_madds(model, torch.randn(1, 3, 224, 224)) == CONV_LINEAR_MADDS[name]


def test_v1_puts_stride_on_first_1x1():
    v1, v15 = create_model("resnet50_v1"), create_model("resnet50")
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)


def test_forward_shapes():
    x = torch.randn(2, 3, 224, 224)
    assert create_model("resnet18")(x).shape == (2, 1000)
    assert create_model("mobilenetv2_035")(x).shape == (2, 1000)
    assert create_model("resnet18", num_classes=10)(x).shape == (2, 10)


def test_cifar_resnet18_has_the_cifar_layout():
    """3x3 stride-1 stem, no max-pool, 10 classes: the ResNet-18 of CIFAR reproductions."""
    model = create_model("resnet18_cifar").eval()
    assert count_params(model)["params"] == 11_173_962
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    # stem 1,769,472 + 4 stages of 150,994,944 / 134,217,728 x 3 + fc 5,120 (by hand)
    assert conv_linear_madds(model, x[:1]) == 1_769_472 + 150_994_944 + 3 * 134_217_728 + 5_120
    # its DY-Conv variant differs from the ImageNet one by the stem, the classifier and the
    # attention: per dynamic conv (19, input channels summing to 3840) the ImageNet one's
    # C/4-wide normed hidden layer (2 C/4 BN params) against the CIFAR one's C/4 + 1
    # (C + 4 more weights): C/2 + 4 fewer params each
    imagenet = count_params(create_model("resnet18_dyconv_4x"))["params"]
    cifar = count_params(create_model("resnet18_cifar_dyconv_4x"))["params"]
    stem_and_fc = (7 * 7 - 3 * 3) * 3 * 64 + (512 * 1000 + 1000) - (512 * 10 + 10)
    assert imagenet - cifar == stem_and_fc - (3840 // 2 + 4 * 19)


@pytest.mark.parametrize("channels_last", [False, True])
def test_stem_pool_equals_max_pool_in_the_input_layout(channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 64, 21, 18, requires_grad=True)
    if channels_last:
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    ours, plain = StemPool(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)
    out = ours(x)
    assert torch.equal(out, plain(x))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=layout)
    (grad,) = torch.autograd.grad(out.sum(), x)
    (expected,) = torch.autograd.grad(plain(x).sum(), x)
    assert torch.equal(grad, expected)
    assert isinstance(create_model("resnet18").maxpool, StemPool)
