"""The papers' released code as models beside dynbench's: their own networks where a
repository gives one, else dynbench's network with the released layer swapped in.

The repositories are imported from the paths given (checkouts outside this package),
never copied:

* OSVAI/ODConv: its ``od_resnet18/50`` and ``od_mobilenetv2_100`` models;
* liyunsheng13/dcd: its ``resnet18_dcd``/``resnet50_dcd`` and ``mobilenetv2_dcd``
  (``fc_squeeze=16``, the x1.0 setting of its README);
* kaijieshi7/Dynamic-convolution-Pytorch gives an operator only: dynbench's DY-Conv
  model with every ``DynamicConv2d`` swapped for the released ``Dynamic_conv2d``
  (same geometry, bias and K; temperature 1, the evaluation value);
* d-li14/condconv.pytorch: dynbench's CondConv model with the released ``CondConv2d``
  in place of each conv, its ``route_func`` as each block's shared routing, and as
  classifier a released 1x1 ``CondConv2d`` on the pooled map routed by its own
  ``route_func`` (as its MobileNetV2 does). On MobileNetV2 the variant
  ``condconv_8x_model`` is its own ``cond_mobilenetv2`` instead: the same network, but
  its static layers are written more leanly than dynbench's, which a ratio to dynbench's
  static model books as a smaller operator overhead; the swapped model keeps the
  skeletons equal.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from torch import Tensor, nn

from dynbench.errors import DynbenchError
from dynbench.models.registry import create_model
from dynbench.models.swap import swap_modules
from dynbench.ops.condconv import CondConv2d, CondConvRouting, CondLinear
from dynbench.ops.dyconv import DynamicConv2d

BACKBONES = ("resnet18", "resnet50", "mobilenetv2_100")
VARIANTS = ("odconv_1x", "odconv_4x", "dyconv_4x", "dcd", "condconv_8x", "condconv_8x_model")
# the dynbench model a variant is set beside, where its name is not the variant's
OURS = {"condconv_8x_model": "condconv_8x"}
# the variants whose released counterpart is dynbench's own model with the released layers
# swapped in: the two models' layers pair up by module name
SWAPPED: dict[str, tuple[type, ...]] = {
    "dyconv_4x": (DynamicConv2d,),
    "condconv_8x": (CondConv2d, CondConvRouting, CondLinear),
}


def pairs(backbone: str, variants: tuple[str, ...]) -> list[tuple[str, str]]:
    """(variant, the dynbench model it is set beside) for the variants this backbone has
    (``condconv_8x_model`` is d-li14's MobileNetV2, which has no ResNet)."""
    return [
        (v, f"{backbone}_{OURS.get(v, v)}")
        for v in variants
        if v != "condconv_8x_model" or backbone.startswith("mobilenetv2")
    ]


def load_module(name: str, path: Path, search: Path) -> ModuleType:
    """Import ``path`` as module ``name``, with ``search`` on sys.path for its own imports."""
    if not path.is_file():
        raise DynbenchError(f"released code not found: {path} (pass the repository's root)")
    sys.path.insert(0, str(search))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


class Released:
    """The released repositories, imported once, and the models built from them."""

    def __init__(self, odconv: Path, dcd: Path, dyconv: Path, condconv: Path) -> None:
        self.od_resnet = load_module("released_od_resnet", odconv / "models/od_resnet.py", odconv)
        self.od_mobile = load_module(
            "released_od_mobilenetv2", odconv / "models/od_mobilenetv2.py", odconv
        )
        imagenet = dcd / "models/imagenet"
        self.dcd_resnet = load_module("released_dcd_resnet", imagenet / "resnet_dcd.py", imagenet)
        self.dcd_mobile = load_module(
            "released_dcd_mobilenetv2", imagenet / "mobilenetv2_dcd.py", imagenet
        )
        self.dyconv = load_module("released_dynamic_conv", dyconv / "dynamic_conv.py", dyconv)
        self.condconv = load_module("condconv", condconv / "condconv.py", condconv)
        self.cond_mobile = load_module(
            "released_cond_mobilenetv2", condconv / "cond_mobilenetv2.py", condconv
        )

    def model(self, backbone: str, variant: str) -> nn.Module:
        """The released counterpart of dynbench's ``{backbone}_{variant}``."""
        mobile = backbone.startswith("mobilenetv2")
        depth = backbone.removeprefix("resnet")
        if variant.startswith("odconv"):
            kernels = int(variant.split("_")[1].removesuffix("x"))
            if mobile:
                return self.od_mobile.od_mobilenetv2_100(kernel_num=kernels)
            return getattr(self.od_resnet, f"od_resnet{depth}")(kernel_num=kernels)
        if variant == "dcd":
            if mobile:
                return self.dcd_mobile.mobilenetv2_dcd(width_mult=1.0, fc_squeeze=16)
            return getattr(self.dcd_resnet, f"resnet{depth}_dcd")()
        if variant == "dyconv_4x":
            model = create_model(f"{backbone}_dyconv_4x")
            swap_modules(model, DynamicConv2d, self.dynamic_conv)
            return model
        if variant == "condconv_8x_model":
            if not mobile:
                raise ValueError("condconv.pytorch has a MobileNetV2 model only")
            return self.cond_mobile.cond_mobilenetv2(width_mult=1.0, num_experts=8)
        if variant == "condconv_8x":
            model = create_model(f"{backbone}_condconv_8x")
            swap_modules(
                model,
                CondConvRouting,
                lambda op: self.condconv.route_func(op.fc.in_features, op.fc.out_features),
            )
            swap_modules(model, CondConv2d, self.cond_conv)
            swap_modules(model, CondLinear, self.cond_classifier)
            return model
        raise ValueError(f"unknown variant {variant!r}")

    def dynamic_conv(self, op: DynamicConv2d) -> nn.Module:
        """The released ``Dynamic_conv2d`` of ``op``'s geometry, bias and K."""
        return self.dyconv.Dynamic_conv2d(
            op.in_channels,
            op.out_channels,
            op.kernel_size,
            ratio=0.25,
            stride=op.stride,
            padding=op.padding,
            groups=op.groups,
            bias=op.bias is not None,
            K=op.num_kernels,
            temperature=1,
        )

    def cond_conv(self, op: CondConv2d) -> nn.Module:
        """The released ``CondConv2d`` of ``op``'s geometry, taking its block's routing."""
        if op.router is not None:
            raise ValueError("only block-routed CondConv2d layers are swapped")
        conv = self.condconv.CondConv2d(
            op.in_channels,
            op.out_channels,
            op.kernel_size,
            op.stride,
            op.padding,
            groups=op.groups,
            bias=op.bias is not None,
            num_experts=op.num_kernels,
        )
        conv.takes_routing = True  # so dynbench's blocks hand it their routing
        return conv

    def cond_classifier(self, op: CondLinear) -> nn.Module:
        """A released 1x1 ``CondConv2d`` and its own ``route_func`` in place of ``op``."""
        return RoutedClassifier(
            self.condconv.route_func(op.in_features, op.num_kernels),
            self.condconv.CondConv2d(
                op.in_features,
                op.out_features,
                1,
                bias=op.bias is not None,
                num_experts=op.num_kernels,
            ),
        )


class RoutedClassifier(nn.Module):
    """A released CondConv 1x1 conv and its router standing in for dynbench's CondLinear."""

    def __init__(self, router: nn.Module, conv: nn.Module) -> None:
        super().__init__()
        self.router, self.conv = router, conv

    def forward(self, x: Tensor) -> Tensor:
        pooled = x[:, :, None, None]
        return self.conv(pooled, self.router(pooled)).flatten(1)


def layer_kind(layer: nn.Module) -> str:
    """What a swapped layer is, for the layer-by-layer table: ``block routing``,
    ``classifier``, ``KxK`` or ``KxK depthwise``."""
    if isinstance(layer, CondConvRouting):
        return "block routing"
    if isinstance(layer, CondLinear):
        return "classifier"
    k = layer.kernel_size
    return f"{k}x{k} depthwise" if layer.groups > 1 else f"{k}x{k}"
