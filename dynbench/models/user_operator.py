"""A user's own conv operator, built into the backbones the papers use and registered for a run.

``--operator package.module:Class`` names a drop-in for ``nn.Conv2d``: its constructor takes
``(in_channels, out_channels, kernel_size, stride=, padding=, groups=, bias=)`` and its
``forward(x)`` returns what the conv it replaces returns in shape (a ``routing`` argument,
as CondConv's layers take, may follow with a default: each layer then routes itself). The
operator goes into ResNet-18, ResNet-50 and MobileNetV2 x1.0 through the same
:class:`~dynbench.models.variants.OperatorLayers` placements the papers' operators use, and
each model is registered as ``<backbone>_<name>`` in the backbone's family, so every suite
measures it as it measures CondConv, DY-Conv, DCD and ODConv.

Before anything is measured each replaced layer is built and run once beside the conv it
replaces (:func:`check_operator`): a class that is not an ``nn.Module``, a constructor that
refuses the conv's arguments, or an output of another shape is a :class:`DynbenchError`
naming the class, the layer and what was expected.

An operator may declare its analytic MAdds as ours do (``analytic_madds(x_shape,
out_shape)`` returning the parts of :data:`dynbench.results.names.MADDS_PARTS`); without it
the layers are marked (:data:`NO_ANALYTIC`) and the analytic counter says so for the model
instead of counting the replaced layers as plain convs.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from dynbench.errors import DynbenchError, one_line
from dynbench.measure.shape_counters import NO_ANALYTIC
from dynbench.measure.weights import STATIC_WEIGHTS
from dynbench.models.identity import USER
from dynbench.models.layers import BLOCK, HEAD, ConvSpec, static_conv
from dynbench.models.registry import (
    find_model,
    import_reference,
    model_info,
    register,
    unregister_model,
    zero_init,
)
from dynbench.models.variants import OperatorLayers, all_but_stem, block_convs


def block_pointwise(spec: ConvSpec) -> bool:
    """The 1x1 convs of the blocks and MobileNetV2's head conv: DCD's MobileNetV2 placement."""
    return spec.role in (BLOCK, HEAD) and spec.is_pointwise


# placement -> backbone -> which convs the operator replaces; "blocks" is ODConv's (every
# block conv of a ResNet, every conv but the stem of MobileNetV2), "pointwise" DCD's
PLACEMENTS: dict[str, dict[str, Callable[[ConvSpec], bool]]] = {
    "blocks": {"resnet18": block_convs, "resnet50": block_convs, "mobilenetv2_100": all_but_stem},
    "pointwise": {
        "resnet18": block_pointwise,
        "resnet50": block_pointwise,
        "mobilenetv2_100": block_pointwise,
    },
}
PLACEMENT_TEXT = {
    "blocks": "every block conv (ResNet) or every conv but the stem (MobileNetV2)",
    "pointwise": "the 1x1 convs of the blocks (and MobileNetV2's head conv)",
}


@dataclass(frozen=True)
class UserOperator:
    """A user's operator class and where it goes."""

    reference: str  # package.module:Class
    name: str  # in the model names: resnet18_<name>
    cls: type
    placement: str = "blocks"

    @property
    def analytic(self) -> bool:
        return callable(getattr(self.cls, "analytic_madds", None))

    def build(self, spec: ConvSpec) -> nn.Module:
        layer = self.cls(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            stride=spec.stride,
            padding=spec.padding,
            groups=spec.groups,
            bias=spec.bias,
        )
        if isinstance(layer, nn.Module):
            static = spec.out_channels * (spec.in_channels // spec.groups) * spec.kernel_size**2
            setattr(layer, STATIC_WEIGHTS, static + (spec.out_channels if spec.bias else 0))
            if not self.analytic:
                setattr(layer, NO_ANALYTIC, self.cls.__name__)
        return layer

    def layers(self, backbone: str) -> Callable[[], OperatorLayers]:
        select = PLACEMENTS[self.placement][backbone]
        return lambda: OperatorLayers(self.build, select)

    def model_name(self, backbone: str) -> str:
        return f"{backbone}_{self.name}"


def load_operator(
    reference: str, name: str | None = None, placement: str = "blocks"
) -> UserOperator:
    """Import ``package.module:Class`` (the working directory first on the path)."""
    if placement not in PLACEMENTS:
        raise DynbenchError(
            f"--placement {placement!r} is not known; accepted: {', '.join(PLACEMENTS)}"
        )
    module_name, attr, cls = import_reference(reference, "--operator", "Class")
    if cls is None:
        raise DynbenchError(f"--operator {reference!r}: {module_name} has no {attr!r}")
    short = name or re.sub(r"[^a-z0-9]+", "", attr.lower())
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", short):
        raise DynbenchError(
            f"--operator-name {short!r} is not a model-name part; use lower-case letters, "
            "digits and _"
        )
    return UserOperator(reference, short, cls, placement)


def _layer_text(spec: ConvSpec) -> str:
    groups = f", groups {spec.groups}" if spec.groups > 1 else ""
    return (
        f"{spec.in_channels}->{spec.out_channels} {spec.kernel_size}x{spec.kernel_size} "
        f"stride {spec.stride}{groups}"
    )


class _Probe(OperatorLayers):
    """The static backbone, remembering each conv the operator would replace and its spec."""

    def __init__(self, select: Callable[[ConvSpec], bool]) -> None:
        super().__init__(static_conv, select)
        self.replaced: list[tuple[ConvSpec, nn.Conv2d]] = []

    def conv(self, spec: ConvSpec) -> nn.Module:
        layer = super().conv(spec)
        if self._select(spec):
            self.replaced.append((spec, layer))
        return layer


def check_operator(operator: UserOperator, backbone: str) -> int:
    """Build each layer ``operator`` replaces in ``backbone`` beside the static conv and run
    it on that conv's input; the number of layers replaced. A refusal names the class, the
    layer (its module path and shape) and what was expected."""
    info = model_info(backbone)
    probe = _Probe(PLACEMENTS[operator.placement][backbone])
    with zero_init():
        static = info.builder(layers=probe).eval()
    names = {module: name for name, module in static.named_modules()}
    inputs: dict[nn.Module, torch.Size] = {}

    def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        inputs.setdefault(module, args[0].shape)

    hooks = [conv.register_forward_hook(record) for _, conv in probe.replaced]
    with torch.no_grad():
        static(torch.zeros(1, *info.input_size))
    for hook in hooks:
        hook.remove()
    tried: set[tuple] = set()
    for spec, conv in probe.replaced:
        key = (
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            spec.padding,
            spec.groups,
            spec.bias,
            tuple(inputs[conv]),
        )
        if key in tried:
            continue
        tried.add(key)
        where = f"{operator.cls.__name__} at {backbone} {names[conv]} ({_layer_text(spec)})"
        _check_layer(operator, spec, conv, inputs[conv], where)
    return len(probe.replaced)


def _check_layer(
    operator: UserOperator, spec: ConvSpec, conv: nn.Conv2d, shape: torch.Size, where: str
) -> None:
    if not isinstance(operator.cls, type) or not issubclass(operator.cls, nn.Module):
        raise DynbenchError(
            f"--operator {operator.reference}: {where}: {operator.cls!r} is not a torch.nn.Module "
            "subclass; expected a drop-in nn.Conv2d-compatible layer class"
        )
    try:
        layer = operator.build(spec)
    except Exception as exc:
        raise DynbenchError(
            f"--operator {operator.reference}: {where}: constructor refused the conv's "
            f"arguments ({one_line(exc)}); expected {operator.cls.__name__}(in_channels, "
            "out_channels, kernel_size, stride=, padding=, groups=, bias=) as nn.Conv2d takes"
        ) from None
    x = torch.randn(*shape)
    expected = tuple(conv(x).shape)
    try:
        with torch.no_grad():
            got = layer.eval()(x)
    except Exception as exc:
        raise DynbenchError(
            f"--operator {operator.reference}: {where}: forward on input {tuple(shape)} failed "
            f"({one_line(exc)}); expected an output of shape {expected} like the conv it replaces"
        ) from None
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != expected:
        shown = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise DynbenchError(
            f"--operator {operator.reference}: {where}: output {shown} on input "
            f"{tuple(shape)}; expected {expected} like the conv it replaces"
        )


def register_operator(operator: UserOperator) -> list[str]:
    """Check ``operator`` in each backbone and register ``<backbone>_<name>`` for the run;
    the names registered (a backbone where the placement replaces no conv is left out)."""
    names = []
    for backbone in PLACEMENTS[operator.placement]:
        name = operator.model_name(backbone)
        if find_model(name) is not None:
            raise DynbenchError(
                f"--operator {operator.reference}: model {name!r} is already registered; "
                "choose another --operator-name"
            )
        if check_operator(operator, backbone) == 0:
            continue
        base = model_info(backbone)
        register(
            name,
            _builder(base.builder, operator.layers(backbone)),
            family=backbone,
            operator=operator.name,
            description=f"{operator.reference} on {PLACEMENT_TEXT[operator.placement]}",
            input_size=base.input_size,
            tags=(USER, f"placement={operator.placement}"),
            source=operator.reference,
        )
        names.append(name)
    if not names:
        raise DynbenchError(
            f"--operator {operator.reference}: --placement {operator.placement} replaces no "
            f"conv of {', '.join(PLACEMENTS[operator.placement])}"
        )
    return names


def _builder(base_builder: Callable[..., nn.Module], make_layers: Callable[[], OperatorLayers]):
    def build(**overrides) -> nn.Module:
        return base_builder(layers=make_layers(), **overrides)

    return build


@contextlib.contextmanager
def registered(operator: UserOperator) -> Iterator[list[str]]:
    """The operator's models registered while the block runs (a run, a test); their names."""
    names = register_operator(operator)
    try:
        yield names
    finally:
        for name in names:
            unregister_model(name)
