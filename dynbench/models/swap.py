"""Replace submodules of one type in a built model: how another implementation of a layer
(a released operator, say) is set into dynbench's skeleton so that only that layer differs."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def swap_modules(model: nn.Module, kind: type, make: Callable[[nn.Module], nn.Module]) -> int:
    """Replace every submodule of type ``kind`` by ``make(it)``, in place; how many were
    replaced. The modules are listed before any is replaced, so a replacement that itself
    holds a ``kind`` is not visited."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, kind):
                setattr(parent, name, make(child))
                replaced += 1
    return replaced
