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

from dynbench.ops import compiled_mask_unit
from dynbench.ops.base import set_on_change

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
        self._kept: tuple | None = None  # (weights' versions, columns) of columns()
        self.compiled = False  # whether the last logits came from the compiled loop

    def forward(self, x: Tensor) -> Tensor:
        """``self.conv(x) + self.fc(x.mean((2, 3)))``, computed as one GEMM and a shift-add.

        A conv with one output channel leaves the conv kernels' blocking idle; as a GEMM
        the positions of x meet the 9 taps at once, (9, C) x (C, N H W), and the output is
        the sum of the 9 tap maps, each shifted by its offset (read through one strided
        view of the zero-bordered maps, no selector conv). The Linear rides along as a
        tenth row: the mean of w . x over the positions is w . mean(x), so the pooling pass
        over x is saved too. The (10, C) side is the GEMM's left operand in both layouts:
        with x's rows on the right (transposed for channels-last rows) the GEMM streams x
        once, where ten output columns on the right leave the BLAS kernels' blocking idle.
        """
        batch, channels, height, width = x.shape
        conv_weight, fc_weight, conv_bias, fc_bias = self.parameters_now()
        columns = self.columns(conv_weight, fc_weight)
        if x.is_contiguous():  # an NCHW map: (10, C) x (C, H W) per image reads x as it lies
            # (mm or bmm, not matmul: matmul folds a 2-D left operand into the transposed
            # product, the slow orientation again)
            if batch == 1:
                maps = columns @ x.view(channels, -1)
            else:
                rows = x.view(batch, channels, -1)
                maps = torch.bmm(columns.expand(batch, -1, -1), rows).transpose(0, 1)
        else:  # channels-last rows (N H W, C)
            maps = columns @ x.permute(0, 2, 3, 1).reshape(-1, channels).t()
        return self.logits(maps.reshape(10, batch, height, width), conv_bias, fc_bias)

    def parameters_now(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The conv's and the Linear's weights and biases, read from the modules' own
        dictionaries: through ``nn.Module.__getattr__`` the five lookups a call needs cost
        as much as a small unit's arithmetic at batch 1."""
        conv, fc = self._modules["conv"]._parameters, self._modules["fc"]._parameters
        return conv["weight"], fc["weight"], conv["bias"], fc["bias"]

    def logits(self, taps: Tensor, conv_bias: Tensor, fc_bias: Tensor) -> Tensor:
        """The logits from the (10, N, H, W) products of x with :meth:`columns`' rows: the 9
        tap maps shifted into the conv's outputs and summed, plus the Linear's pooled row
        and both biases; one compiled loop where it applies
        (:mod:`dynbench.ops.compiled_mask_unit`; :attr:`compiled` says whether it ran)."""
        stride = self._modules["conv"].stride[0]
        logits = compiled_mask_unit.mask_logits(taps, conv_bias, fc_bias, stride)
        set_on_change(self, "compiled", logits is not None)
        if logits is not None:
            return logits
        batch, height, width = taps.shape[1:]
        pooled = taps[9].mean((1, 2)) + fc_bias + conv_bias
        padded = F.pad(taps[:9], (1, 1, 1, 1))  # (9, N, H + 2, W + 2), the conv's padding
        tap, image, row, col = padded.stride()
        out_h, out_w = (height - 1) // stride + 1, (width - 1) // stride + 1
        # window (ky, kx) of output (i, j) reads tap 3 ky + kx at (stride i + ky, stride j + kx)
        windows = padded.as_strided(
            (batch, out_h, out_w, 3, 3),
            (image, stride * row, stride * col, 3 * tap + row, tap + col),
        )
        return (windows.sum((3, 4)) + pooled.view(batch, 1, 1)).unsqueeze(1)

    def columns(self, conv_weight: Tensor, fc_weight: Tensor) -> Tensor:
        """(10, C): the 9 taps (ky, kx order) of the conv's weight and the Linear's weight as
        rows; kept across calls while no gradient is recorded and the weights are unchanged."""
        if torch.is_grad_enabled():
            return torch.cat([conv_weight[0].reshape(-1, 9).t(), fc_weight])
        key = (
            conv_weight._version,
            fc_weight._version,
            conv_weight.data_ptr(),
            fc_weight.data_ptr(),
        )
        if self._kept is None or self._kept[0] != key:
            # a normal tensor (usable outside inference mode) that records no gradient
            with torch.inference_mode(False), torch.no_grad():
                weights = torch.cat([conv_weight[0].reshape(-1, 9).t(), fc_weight])
            self._kept = (key, weights.contiguous())
        return self._kept[1]

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
        """What :meth:`forward` computes: the GEMM of 9 taps and the Linear's row at every
        input position, the 9 shifted taps summed at every output, and the pooled logit's
        add (each add counted as one)."""
        batch, channels, height, width = x_shape
        outputs = math.prod(out_shape)
        return batch * height * width * 10 * channels + outputs * 9 + outputs

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
