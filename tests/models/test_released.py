"""The released-code adapter on stand-in repositories (files of the released layout whose
functions record how they were called): which model stands for which variant, and the
layers swapped into dynbench's skeletons."""

import sys

import pytest
import torch
from torch import nn

from dynbench.errors import DynbenchError
from dynbench.models import create_model
from dynbench.models.released import (
    VARIANTS,
    Released,
    RoutedClassifier,
    layer_kind,
    load_module,
    pairs,
)
from dynbench.ops.condconv import CondConv2d, CondConvRouting, CondLinear
from dynbench.ops.dyconv import DynamicConv2d

STAND_IN = """
from torch import nn


class Made(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.args, self.kwargs = args, kwargs


def factory(name):
    return lambda *args, **kwargs: type(name, (Made,), {"made": name})(*args, **kwargs)
"""
FILES = {
    "odconv/models/od_resnet.py": ("od_resnet18", "od_resnet50"),
    "odconv/models/od_mobilenetv2.py": ("od_mobilenetv2_100",),
    "dcd/models/imagenet/resnet_dcd.py": ("resnet18_dcd", "resnet50_dcd"),
    "dcd/models/imagenet/mobilenetv2_dcd.py": ("mobilenetv2_dcd",),
    "dyconv/dynamic_conv.py": ("Dynamic_conv2d",),
    "condconv/condconv.py": ("CondConv2d", "route_func"),
    "condconv/cond_mobilenetv2.py": ("cond_mobilenetv2",),
}


@pytest.fixture
def released(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    for path, names in FILES.items():
        file = tmp_path / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(STAND_IN + "".join(f"{n} = factory({n!r})\n" for n in names))
    yield Released(*(tmp_path / repo for repo in ("odconv", "dcd", "dyconv", "condconv")))
    for name in [n for n in sys.modules if n.startswith("released_") or n == "condconv"]:
        del sys.modules[name]  # the stand-ins, imported under the released code's names


def test_pairs_set_each_variant_beside_its_dynbench_model():
    assert pairs("resnet18", VARIANTS) == [
        ("odconv_1x", "resnet18_odconv_1x"), ("odconv_4x", "resnet18_odconv_4x"),
        ("dyconv_4x", "resnet18_dyconv_4x"), ("dcd", "resnet18_dcd"),
        ("condconv_8x", "resnet18_condconv_8x"),
    ]  # fmt: skip
    assert pairs("mobilenetv2_100", ("condconv_8x_model",)) == [
        ("condconv_8x_model", "mobilenetv2_100_condconv_8x")
    ]


def test_a_missing_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(DynbenchError) as error:
        load_module("released_missing", tmp_path / "models/od_resnet.py", tmp_path)
    assert str(error.value) == (
        f"released code not found: {tmp_path}/models/od_resnet.py (pass the repository's root)"
    )


@pytest.mark.parametrize(
    "backbone, variant, made, kwargs",
    [
        ("resnet18", "odconv_1x", "od_resnet18", {"kernel_num": 1}),
        ("resnet50", "odconv_4x", "od_resnet50", {"kernel_num": 4}),
        ("mobilenetv2_100", "odconv_4x", "od_mobilenetv2_100", {"kernel_num": 4}),
        ("resnet50", "dcd", "resnet50_dcd", {}),
        ("mobilenetv2_100", "dcd", "mobilenetv2_dcd", {"width_mult": 1.0, "fc_squeeze": 16}),
        (
            "mobilenetv2_100",
            "condconv_8x_model",
            "cond_mobilenetv2",
            {"width_mult": 1.0, "num_experts": 8},
        ),
    ],  # fmt: skip
)
def test_the_released_models_are_built_with_the_papers_settings(
    released, backbone, variant, made, kwargs
):
    model = released.model(backbone, variant)
    assert (model.made, model.kwargs) == (made, kwargs)


def test_variants_without_a_released_model_are_refused(released):
    with pytest.raises(ValueError, match="MobileNetV2 model only"):
        released.model("resnet18", "condconv_8x_model")
    with pytest.raises(ValueError, match="unknown variant 'dcd_2x'"):
        released.model("resnet18", "dcd_2x")


def _layers(model: nn.Module, kind: type) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, kind)}


def test_dyconv_each_dynamic_conv_becomes_a_released_one_of_its_geometry(released):
    with torch.device("meta"):
        ours = _layers(create_model("resnet18_dyconv_4x"), DynamicConv2d)
        swapped = dict(released.model("resnet18", "dyconv_4x").named_modules())
    assert len(ours) == 19  # the 16 block convs and the 3 downsample convs (stem static)
    for name, op in ours.items():
        stand_in = swapped[name]
        assert stand_in.made == "Dynamic_conv2d"
        assert stand_in.args == (op.in_channels, op.out_channels, op.kernel_size)
        assert stand_in.kwargs == {
            "ratio": 0.25, "stride": op.stride, "padding": op.padding, "groups": op.groups,
            "bias": False, "K": 4, "temperature": 1,
        }  # fmt: skip


def test_condconv_routing_convs_and_classifier_are_the_released_ones(released):
    with torch.device("meta"):
        ours = create_model("mobilenetv2_100_condconv_8x")
        swapped = released.model("mobilenetv2_100", "condconv_8x")
    for kind in (CondConv2d, CondConvRouting, CondLinear):
        assert not _layers(swapped, kind)
    modules = dict(swapped.named_modules())
    routers = _layers(ours, CondConvRouting)
    assert routers and all(
        modules[n].args == (op.fc.in_features, op.fc.out_features) for n, op in routers.items()
    )
    convs = _layers(ours, CondConv2d)
    assert convs and all(
        modules[n].made == "CondConv2d" and modules[n].takes_routing
        and modules[n].args == (op.in_channels, op.out_channels, op.kernel_size, op.stride,
                                op.padding)
        and modules[n].kwargs == {"groups": op.groups, "bias": False, "num_experts": 8}
        for n, op in convs.items()
    )  # fmt: skip
    ((name, classifier),) = _layers(ours, CondLinear).items()
    stand_in = modules[name]
    assert isinstance(stand_in, RoutedClassifier)
    assert stand_in.router.args == (classifier.in_features, 8)
    assert stand_in.conv.args == (classifier.in_features, classifier.out_features, 1)


def test_the_routed_classifier_routes_the_pooled_map_and_flattens():
    class Router(nn.Module):
        def forward(self, x):
            self.seen = x.shape
            return x.flatten(1).sum(1, keepdim=True)

    class Conv(nn.Module):
        def forward(self, x, routing):
            return x * routing[:, :, None, None]

    classifier = RoutedClassifier(Router(), Conv())
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = classifier(x)
    assert classifier.router.seen == (2, 2, 1, 1)
    assert out.tolist() == [[3.0, 6.0], [21.0, 28.0]]


def test_layer_kinds():
    assert layer_kind(DynamicConv2d(8, 8, 3, 1, 1)) == "3x3"
    assert layer_kind(CondConv2d(8, 8, 3, 1, 1, groups=8, num_kernels=2)) == "3x3 depthwise"
    assert layer_kind(CondConvRouting(8, 2)) == "block routing"
    assert layer_kind(CondLinear(8, 4, num_kernels=2)) == "classifier"
