"""The model registry: one name, one builder, one description (timm-style).

``@register_model`` records a builder under its function name together with
the metadata a report needs (family, operator, input size, tags, a one-line
description). ``create_model`` builds by name, ``list_models`` filters by glob,
and ``load_user_model`` accepts a ``package.module:factory`` reference so a
user's own network is measured exactly like a registered one.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from dynbench.errors import DynbenchError, one_line

DEFAULT_INPUT_SIZE: tuple[int, int, int] = (3, 224, 224)


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model without building it."""

    name: str
    family: str  # the baseline this model is a variant of, e.g. "resnet18"
    operator: str  # "static", "condconv", "dyconv", "dcd", "odconv", "se", ...
    description: str
    builder: Callable[..., nn.Module]
    input_size: tuple[int, int, int] = DEFAULT_INPUT_SIZE
    tags: tuple[str, ...] = ()
    source: str = ""  # a user's model or operator: its package.module:name reference

    def resolved_input_size(self, override: object = None) -> tuple[int, int, int]:
        """A suite's ``input_size`` setting when given, else the model's own."""
        return tuple(override or self.input_size)  # type: ignore[return-value]

    @property
    def is_baseline(self) -> bool:
        return self.operator == "static"


_REGISTRY: dict[str, ModelInfo] = {}


def register(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    family: str,
    operator: str,
    description: str,
    input_size: tuple[int, int, int] = DEFAULT_INPUT_SIZE,
    tags: tuple[str, ...] = (),
    source: str = "",
) -> ModelInfo:
    """Record ``builder`` under ``name``; names are unique."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    info = ModelInfo(name, family, operator, description, builder, input_size, tags, source)
    _REGISTRY[name] = info
    return info


def register_model(
    *,
    family: str | None = None,
    operator: str = "static",
    description: str,
    input_size: tuple[int, int, int] = DEFAULT_INPUT_SIZE,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator form of :func:`register`: the function's name is the model's name."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        register(
            fn.__name__,
            fn,
            family=family or fn.__name__,
            operator=operator,
            description=description,
            input_size=input_size,
            tags=tags,
        )
        return fn

    return decorate


def model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = ", ".join(fnmatch.filter(_REGISTRY, f"*{name.split('_')[0]}*")[:5])
        hint = f" (similar: {close})" if close else ""
        raise DynbenchError(
            f"unknown model {name!r}{hint}; run 'dynbench list' for the {len(_REGISTRY)} "
            "registered names, or pass --model package.module:factory"
        ) from None


def find_model(name: str) -> ModelInfo | None:
    """The registered model ``name``, or None (where absence is not an error)."""
    return _REGISTRY.get(name)


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (a test's or a session's own model)."""
    del _REGISTRY[name]


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; ``overrides`` go to its builder (e.g. ``num_classes``)."""
    return model_info(name).builder(**overrides)


# The torch.nn.init functions builders call: replaced while building a model whose values
# no figure reads (see zero_init).
INIT_FUNCTIONS = (
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "uniform_",
    "constant_",
    "ones_",
    "zeros_",
    "trunc_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "orthogonal_",
)


def _zero(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return tensor.zero_()


@contextlib.contextmanager
def zero_init() -> Iterator[None]:
    """Builders' ``torch.nn.init`` calls fill zeros instead of drawing random values.

    Random initialisation is most of the time it takes to build a model with K kernels
    per layer, and a size measure reads no weight's value: same parameters, same
    shapes, same buffers (those are not set through ``nn.init``), only the weights are
    zero. A registered model whose counted ops depended on its weights' values would
    show in tests/run/test_sizes.py, which counts every model built both ways.
    """
    with contextlib.ExitStack() as stack:
        for name in INIT_FUNCTIONS:
            stack.enter_context(mock.patch.object(nn.init, name, _zero))
        yield


PUBLISHED_PATTERN = "@published"  # every model that a published table row refers to


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a glob (several may be given, comma-separated).

    ``@published`` stands for the models the published tables refer to.
    """
    patterns = [p.strip() for p in pattern.split(",") if p.strip()] or ["*"]
    names = set()
    if PUBLISHED_PATTERN in patterns:
        from dynbench.published import published_models

        names.update(n for n in published_models() if n in _REGISTRY)
    names.update(n for n in _REGISTRY if any(fnmatch.fnmatchcase(n, p) for p in patterns))
    return sorted(names)


def all_models() -> list[ModelInfo]:
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def select_models(pattern: str) -> list[str]:
    """Like :func:`list_models` but an empty match is an error, as a user expects."""
    names = list_models(pattern)
    if not names:
        raise DynbenchError(
            f"model pattern {pattern!r} matches no registered model; patterns are globs "
            "such as 'resnet18*' or 'mobilenetv2_*_odconv_*' (see 'dynbench list')"
        )
    return names


def import_reference(reference: str, option: str, kind: str) -> tuple[str, str, object]:
    """(module name, attribute name, attribute) of ``package.module:attr``, imported with the
    working directory first on the path; ``option`` and ``kind`` (``factory``, ``Class``)
    name it in the one-line error a malformed or unimportable reference gets. The attribute
    is None where the module has none."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise DynbenchError(f"{option} {reference!r} is not of the form package.module:{kind}")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's module's
        raise DynbenchError(
            f"{option} {reference!r}: cannot import {module_name!r} ({one_line(exc)})"
        ) from None
    return module_name, attr, getattr(module, attr, None)


def load_user_model(reference: str, option: str = "--model") -> tuple[ModelInfo, nn.Module]:
    """Import ``package.module:factory``, call it, and check it returns an ``nn.Module``;
    ``option`` names where the reference was given in error messages."""
    module_name, attr, factory = import_reference(reference, option, "factory")
    if not callable(factory):
        raise DynbenchError(f"{option} {reference!r}: {module_name} has no callable {attr!r}")
    try:
        model = factory()
    except Exception as exc:
        raise DynbenchError(
            f"{option} {reference!r}: calling {attr}() failed ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(model, nn.Module):
        raise DynbenchError(
            f"{option} {reference!r}: {attr}() returned {type(model).__name__}, "
            "expected a torch.nn.Module"
        )
    input_size = tuple(getattr(factory, "input_size", DEFAULT_INPUT_SIZE))
    info = ModelInfo(
        name=reference,
        family=reference,
        operator="user",
        description=f"user model {reference}",
        builder=lambda **_: model,
        input_size=input_size,
        tags=("user",),  # type: ignore[arg-type]
        source=reference,
    )
    return info, model


def parse_input_size(text: str | None) -> tuple[int, int, int] | None:
    """'3,224,224' (or 3x224x224) -> (3, 224, 224); anything else is a user error."""
    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(v <= 0 for v in values):
        raise DynbenchError(
            f"input size {text!r} is not three positive integers; use C,H,W such as 3,224,224"
        )
    return values  # type: ignore[return-value]
