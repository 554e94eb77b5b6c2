"""Layer specifications and the pluggable factory every backbone builds through.

Backbones never instantiate ``nn.Conv2d`` or ``nn.Linear`` directly: they describe
each layer with a :class:`ConvSpec` / :class:`LinearSpec` and ask a
:class:`LayerFactory` for the module. The static factory returns the plain
torch layers (so the baselines equal torchvision's exactly); a dynamic variant
returns its operator for the layers its paper replaces and the static layer for
the rest. The spec carries enough context (role, shape, block index) for a variant
to make that choice per layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor, nn

from dynbench.ops.attention import BranchAttention
from dynbench.ops.base import DynamicOp

# Roles a convolution can play in a backbone.
STEM = "stem"
BLOCK = "block"
DOWNSAMPLE = "downsample"
HEAD = "head"  # MobileNetV2's last 1x1 conv before pooling


@dataclass(frozen=True)
class ConvSpec:
    """Everything a factory needs to build (or decide not to replace) one conv."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = False
    role: str = BLOCK
    block_index: int = -1  # global index of the residual block, -1 outside blocks
    num_blocks: int = 0  # blocks in the whole backbone

    @property
    def is_pointwise(self) -> bool:
        return self.kernel_size == 1

    def conv_kwargs(self) -> dict[str, int | bool]:
        """The conv's geometry under ``nn.Conv2d``'s keyword names, which the drop-in
        operators that take all of them (CondConv, DY-Conv) share."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "groups": self.groups,
            "bias": self.bias,
        }


@dataclass(frozen=True)
class LinearSpec:
    """The classifier layer."""

    in_features: int
    out_features: int
    bias: bool = True


@dataclass(frozen=True)
class BlockSpec:
    """A residual block, offered to the factory for wrapping (shared routing, SE, ...)."""

    channels: int  # channels of the residual branch output
    in_channels: int
    block_index: int
    num_blocks: int


class LayerFactory:
    """The static layers: what torchvision's ResNet and MobileNetV2 use."""

    def conv(self, spec: ConvSpec) -> nn.Module:
        return static_conv(spec)

    def linear(self, spec: LinearSpec) -> nn.Module:
        return nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)

    def branch_attention(self, spec: BlockSpec) -> nn.Module | None:
        """An attention module applied to a block's residual branch (SE, CBAM, ECA)."""
        return None

    def wrap_block(self, block: nn.Module, spec: BlockSpec) -> nn.Module:
        """Give a variant the whole block, e.g. to share one routing over its convs."""
        return block


def static_conv(spec: ConvSpec) -> nn.Conv2d:
    return nn.Conv2d(**spec.conv_kwargs())


def run_routed(layer: nn.Module, x: Tensor, routing: Tensor | None) -> Tensor:
    """``layer(x)``, handing ``routing`` to the layers that take one (``takes_routing``).

    A block wrapped by a variant that computes one routing per block (CondConv)
    receives it as ``forward(x, routing=...)`` and passes it on through this, also
    into nested ``nn.Sequential`` containers.
    """
    if routing is None:
        return layer(x)
    if isinstance(layer, nn.Sequential):
        for part in layer:
            x = run_routed(part, x, routing)
        return x
    return layer(x, routing) if getattr(layer, "takes_routing", False) else layer(x)


def static_modules(model: nn.Module) -> Iterator[nn.Module]:
    """Every module of ``model`` that is not inside an operator: what a backbone initialises.

    Operators initialise their own layers (as their papers' code does), so a backbone's
    initialiser must not reach into them.
    """
    stack = [model]
    while stack:
        module = stack.pop()
        yield module
        if not isinstance(module, (DynamicOp, BranchAttention)):
            stack.extend(reversed(list(module.children())))
