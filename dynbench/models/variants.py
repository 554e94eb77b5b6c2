"""Tools for registering dynamic variants of the baselines.

A variant is a baseline built with an :class:`OperatorLayers` factory: a function
that builds the operator for a :class:`ConvSpec`, a predicate choosing which
convolutions it replaces, and optionally a dynamic classifier, a block wrapper
(e.g. CondConv's routing shared by a block) or a branch attention (SE, CBAM).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from dynbench.models.layers import (
    BLOCK,
    DOWNSAMPLE,
    HEAD,
    BlockSpec,
    ConvSpec,
    LayerFactory,
    LinearSpec,
)
from dynbench.models.registry import model_info, register

ConvPredicate = Callable[[ConvSpec], bool]


def block_convs(spec: ConvSpec) -> bool:
    """Every conv inside a residual block (not the stem, downsample or head)."""
    return spec.role == BLOCK


def block_and_downsample(spec: ConvSpec) -> bool:
    return spec.role in (BLOCK, DOWNSAMPLE)


def all_but_stem(spec: ConvSpec) -> bool:
    return spec.role in (BLOCK, DOWNSAMPLE, HEAD)


def last_blocks(n: int) -> ConvPredicate:
    """Convs inside the last ``n`` residual blocks."""

    def select(spec: ConvSpec) -> bool:
        return spec.role == BLOCK and spec.block_index >= spec.num_blocks - n

    return select


class OperatorLayers(LayerFactory):
    """Static layers except where ``select`` says the operator goes."""

    def __init__(
        self,
        build_conv: Callable[[ConvSpec], nn.Module] | None = None,
        select: ConvPredicate = block_convs,
        build_linear: Callable[[LinearSpec], nn.Module] | None = None,
        wrap: Callable[[nn.Module, BlockSpec], nn.Module] | None = None,
        attention: Callable[[BlockSpec], nn.Module | None] | None = None,
    ) -> None:
        self._build_conv = build_conv
        self._select = select
        self._build_linear = build_linear
        self._wrap = wrap
        self._attention = attention

    def conv(self, spec: ConvSpec) -> nn.Module:
        if self._build_conv is not None and self._select(spec):
            return self._build_conv(spec)
        return super().conv(spec)

    def linear(self, spec: LinearSpec) -> nn.Module:
        if self._build_linear is not None:
            return self._build_linear(spec)
        return super().linear(spec)

    def wrap_block(self, block: nn.Module, spec: BlockSpec) -> nn.Module:
        return self._wrap(block, spec) if self._wrap else block

    def branch_attention(self, spec: BlockSpec) -> nn.Module | None:
        return self._attention(spec) if self._attention else None


@dataclass(frozen=True)
class Variant:
    """One registry row: the baseline ``base`` built with ``layers()`` under ``name``."""

    name: str
    base: str
    layers: Callable[[], LayerFactory]
    description: str
    operator: str = ""  # where a table mixes operators; else the table's


def register_variants(operator: str, rows: tuple[Variant, ...]) -> None:
    """Register each row of an operator's table; a name must be ``{base}_...`` so that it
    sorts with its family."""
    for row in rows:
        row_operator = row.operator or operator
        if not row.name.startswith(row.base + "_"):
            raise ValueError(f"variant {row.name!r} does not start with its base {row.base!r}")
        base_info = model_info(row.base)
        register(
            row.name,
            _with_layers(base_info.builder, row.layers),
            family=row.base,
            operator=row_operator,
            description=row.description,
            input_size=base_info.input_size,
            tags=(*base_info.tags[1:], row_operator),
        )


def _with_layers(base_builder: Callable[..., nn.Module], make_layers: Callable[[], LayerFactory]):
    """A builder that passes a fresh layer factory to the base builder."""

    def build(**overrides) -> nn.Module:
        return base_builder(layers=make_layers(), **overrides)

    return build
