"""What a MAdds counter is: one object, one entry of :data:`dynbench.measure.madds.MADDS_COUNTERS`.

A counter takes part in the forward every counter shares (:func:`~dynbench.measure.madds.
count_madds`) through the object its ``join`` builds: active while that forward runs
(hooks, or a dispatch mode), then read. Alone, on a forward of its own, it counts
through ``alone``: fvcore's trace, a library's public entry point, or, where it has
none, that forward with only itself joined.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from dynbench.results.names import MADDS_UNIT

FLOPS_UNIT = "FLOPs"  # 2 per multiply-add
PER_MADD = {MADDS_UNIT: 1, FLOPS_UNIT: 2}


@dataclass(frozen=True)
class Counted:
    """What one counter found on one forward, its total in the counter's unit."""

    total: int
    skipped: dict[str, int]  # ops the forward called that the counter has no formula for
    extra: dict[str, int] | None = None  # MAdds it puts on ops beyond conv and matrix products
    breakdown: dict[str, int] | None = None  # the analytic parts (MADDS_PARTS)
    cheaper_route: dict[str, int] | None = None  # see shape_counters.cheaper_route_of


class Joined(Protocol):
    """A counter's part in the shared forward: entered before it runs, exited after,
    then read; ``ops`` are the aten ops that forward called (name -> calls)."""

    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> object: ...

    def read(self, ops: Counter[str]) -> Counted: ...


@dataclass(frozen=True)
class MaddsCounter:
    """One MAdds counter: its name (one of ``results.names.COUNTERS``, the name its
    records carry), the unit its total is in, how it joins the shared forward and how
    it counts on a forward of its own."""

    name: str
    # builds its part in the shared forward; None: it never joins (fvcore traces the model)
    join: Callable[[nn.Module], Joined] | None = None
    # counts on a forward of its own from (model, x, ops: the aten ops the model calls);
    # None: a forward with only itself joined
    alone: Callable[[nn.Module, torch.Tensor, Counter[str]], Counted] | None = None
    unit: str = MADDS_UNIT  # MADDS_UNIT, or FLOPS_UNIT (halved into MAdds)
    reads_ops: bool = False  # its skipped ops come from the traced ops of the forward
    # its dispatch mode may decompose an op it has no formula for: entered first (outermost),
    # so that no other counter sees the decomposition
    outermost: bool = False

    def madds(self, counted: Counted) -> int:
        return counted.total // PER_MADD[self.unit]
