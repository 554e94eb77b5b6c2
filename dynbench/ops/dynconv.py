"""Spatial DynConv (Verelst & Tuytelaars, CVPR 2020): compute only where a mask says.

Each residual block gets a *mask unit* that predicts, per output position, whether the
block's residual branch runs there; elsewhere the block passes its input through. As in
the released code (thomasverelst/dynconv), the unit is a squeeze branch: a 3x3 conv
(C_in -> 1, the block's stride, with bias) plus global average pooling -> Linear
(C_in -> 1), broadcast-added into one logit map. Training draws a Gumbel-sigmoid sample
with a straight-through hard mask (``temperature`` an attribute); eval thresholds the
logits at 0.

No trained masks exist here, so dynbench measures speed, not accuracy: a
:class:`MaskSource` sets every block's mask to a target density ``d`` from a chosen
source (``random`` pixels, a centred ``blob``, random ``patch`` blocks, or the ``unit``'s
own logits with its threshold shifted), and the same seed gives the same masks.

The masks' positions decide the conditional MAdds
(:func:`dynbench.measure.conditional.conditional_madds`): a conv that
feeds a 3x3 conv must run on the *dilated* mask, the positions the 3x3 window reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.results.names import EXECUTIONS  # noqa: F401 (its users import it from here)

MASK_SOURCES = ("random", "blob", "patch", "unit")
GRANULARITIES = ("auto", "pixel", "tile")  # of the sparse execution; auto: the faster
# The largest random offset added to the blob's and the patches' priorities: it orders
# positions of equal priority (inside a blob's ring, a patch) at random rather than by
# index, and is small next to the gaps between distinct priorities it must not reorder
# (two distances from the centre of a square H x H map differ by at least 1 / H^2).
TIE_BREAK = 1e-6


class MaskUnit(nn.Module):
    """The released squeeze branch: logits (N, 1, H_out, W_out) for the block's output."""

    def __init__(self, channels: int, stride: int = 1, temperature: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 3, stride=stride, padding=1, bias=True)
        self.fc = nn.Linear(channels, 1)
        self.temperature = temperature

    def forward(self, x: Tensor) -> Tensor:
        """``self.conv(x) + self.fc(x.mean((2, 3)))``, computed as one GEMM and a shift-add.

        A conv with one output channel leaves the conv kernels' blocking idle; as a GEMM
        the rows of x (channels last) meet the 9 taps at once, (H W, C) x (C, 9), and the
        9 tap maps, each shifted by its offset, add up to the conv's output (a conv of
        the 9 maps with a one-hot 3x3 selector per map). The Linear rides along as a
        tenth column: the mean of x . w over the positions is w . mean(x), so the pooling
        pass over x is saved too. Same MAdds to one GEMM column, same function.
        """
        batch, channels, height, width = x.shape
        columns = torch.cat([self.conv.weight[0].reshape(channels, 9), self.fc.weight.t()], 1)
        if x.is_contiguous():
            # an NCHW map (a dense block's output): (10, C) x (C, H W) per image reads x as
            # it lies; its rows would need a transposing copy of the whole map
            taps = torch.matmul(columns.t(), x.view(batch, channels, -1))  # (N, 10, H W)
            pooled = taps[:, 9].mean(1) + self.fc.bias + self.conv.bias
            maps = taps.view(batch, 10, height, width)[:, :9]
        else:
            taps = (x.permute(0, 2, 3, 1).reshape(-1, channels) @ columns).view(batch, -1, 10)
            pooled = taps[:, :, 9].mean(1) + self.fc.bias + self.conv.bias
            maps = taps.view(batch, height, width, 10)[..., :9].permute(0, 3, 1, 2)
        selector = torch.eye(9, dtype=x.dtype, device=x.device).view(1, 9, 3, 3)
        out = F.conv2d(maps, selector, stride=self.conv.stride, padding=1)
        return out + pooled.view(batch, 1, 1, 1)

    def hard(self, logits: Tensor) -> Tensor:
        """Training: Gumbel-sigmoid sample, hard in the forward, soft in the backward;
        eval: logits >= 0."""
        if not self.training:
            return (logits >= 0).to(logits.dtype)
        u1, u2 = torch.rand_like(logits), torch.rand_like(logits)
        eps = 1e-8
        noise = torch.log(torch.log(u2 + eps) / torch.log(u1 + eps) + eps)
        soft = torch.sigmoid((logits + noise) / self.temperature)
        return ((soft >= 0.5).to(soft.dtype) - soft).detach() + soft

    def conv_linear_madds(self, x: Tensor, out: Tensor) -> int:
        """The conv+linear convention: the 3x3 conv's weights at every output position and
        the Linear on the pooled vector (it runs as a GEMM, so the counters ask here)."""
        return out.numel() * self.conv.weight.numel() + x.shape[0] * self.fc.in_features

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """The unit is the model's attention branch: conv and Linear, no aggregation."""
        attention = math.prod(out_shape) * self.conv.weight.numel() + x_shape[0] * x_shape[1]
        return {"conv": 0, "attention": attention, "aggregation": 0, "feature_scale": 0}

    def executed_madds(self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        """What :meth:`forward` computes: the GEMM of 9 taps and the Linear's column at every
        input position, the one-hot selector conv (9 maps x 9 taps) at every output, and
        the pooled logit's add."""
        batch, channels, height, width = x_shape
        outputs = math.prod(out_shape)
        return batch * height * width * 10 * channels + outputs * 81 + outputs

    def madds(self, out_shape: tuple[int, ...]) -> int:
        """The released counter's figure: the 3x3 conv at every output position, bias adds
        included (the Linear on the pooled vector is not counted)."""
        positions = math.prod(out_shape[:1] + out_shape[2:])
        return positions * (self.conv.weight[0].numel() + 1)


def dilate(mask: Tensor, stride: int, size: tuple[int, int]) -> Tensor:
    """The input positions (of resolution ``size``) a 3x3 conv of ``stride`` and padding 1
    reads to produce the active outputs of ``mask``."""
    if stride > 1:
        spread = torch.zeros(1, 1, stride, stride, dtype=mask.dtype, device=mask.device)
        spread[0, 0, 0, 0] = 1
        padding = [size[1] - mask.shape[3] * stride, size[0] - mask.shape[2] * stride]
        mask = F.conv_transpose2d(mask, spread, stride=stride)
        mask = F.pad(mask, [0, max(padding[0], 0), 0, max(padding[1], 0)])
        mask = mask[:, :, : size[0], : size[1]]
    window = torch.ones(1, 1, 3, 3, dtype=mask.dtype, device=mask.device)
    return (F.conv2d(mask, window, padding=1) > 0.5).to(mask.dtype)


@dataclass(frozen=True)
class MaskSource:
    """Where masks come from when no trained mask unit exists: every block's mask gets
    round(density x H x W) active positions per sample, chosen by ``kind``."""

    kind: str = "unit"
    density: float | None = None  # None: the unit's own threshold (logits >= 0)
    seed: int = 0
    patch: int = 4  # S of the S x S blocks of the "patch" source

    def __post_init__(self) -> None:
        if self.kind not in MASK_SOURCES:
            raise ValueError(f"mask source {self.kind!r}; accepted: {', '.join(MASK_SOURCES)}")
        if self.density is not None and not 0 <= self.density <= 1:
            raise ValueError(f"density {self.density} is not in [0, 1]")
        if self.density is None and self.kind != "unit":
            raise ValueError(f"the {self.kind!r} mask source needs a density")

    def mask(self, logits: Tensor, unit: MaskUnit, block_index: int) -> Tensor:
        """The block's hard mask (N, 1, H, W) for these logits."""
        if self.density is None:
            return unit.hard(logits)
        batch, _, height, width = logits.shape
        active = round(self.density * height * width)
        score = self._score(logits, block_index).to(logits.device)
        mask = torch.zeros_like(logits).view(batch, -1)
        if active:
            top = score.view(batch, -1).topk(active, dim=1).indices
            mask.scatter_(1, top, 1.0)
        return mask.view_as(logits)

    def _score(self, logits: Tensor, block_index: int) -> Tensor:
        """A per-position priority: the top ``active`` positions form the mask. The unit's
        logits stay on their device (no copy to the host per block); the other sources
        draw from a CPU generator seeded per block, so a seed gives the same masks on any
        device."""
        if self.kind == "unit":
            return logits.detach().float()
        batch, _, height, width = logits.shape
        gen = torch.Generator().manual_seed(self.seed * 1009 + block_index)
        # the random source's priorities, and the others' tie-break
        draw = torch.rand(batch, 1, height, width, generator=gen)
        if self.kind == "random":
            return draw
        tie_break = draw * TIE_BREAK
        if self.kind == "blob":
            rows = (torch.arange(height) + 0.5) / height - 0.5
            cols = (torch.arange(width) + 0.5) / width - 0.5
            distance = rows[:, None] ** 2 + cols[None, :] ** 2
            return -distance.expand(batch, 1, height, width) + tie_break
        grid = (batch, 1, -(-height // self.patch), -(-width // self.patch))
        tiles = torch.rand(*grid, generator=gen)
        tiles = tiles.repeat_interleave(self.patch, 2).repeat_interleave(self.patch, 3)
        return tiles[:, :, :height, :width] + tie_break
