"""The analytic MAdds formulas the operators' ``analytic_madds`` and the counters share:
multiply-adds computed from shapes alone (one per weight per output element)."""

from __future__ import annotations

import math


def conv_madds(
    out_shape: tuple[int, ...], in_per_group: int, kh: int, kw: int | None = None
) -> int:
    """MAdds of a convolution producing ``out_shape`` (N, C, H, W): one per weight per pixel."""
    return math.prod(out_shape) * in_per_group * kh * (kh if kw is None else kw)


def fc_madds(rows: int, in_features: int, out_features: int) -> int:
    """MAdds of a fully connected layer applied to ``rows`` vectors."""
    return rows * in_features * out_features
