"""Conditional MAdds of a spatial DynConv model: what a sparse execution must compute.

Dense counters (fvcore, ptflops, torch) see every convolution run everywhere and cannot see
masks; these counts take the masks of one masked forward:

* ``dynconv``: the released counter's convention: convolutions only (bias adds included),
  a branch conv on the active positions of its mask (conv1 on the dilated mask), the mask
  unit's 3x3 conv and every conv outside the masked branches (stem, downsample) dense;
* ``conv_linear``: this project's convention: ``dynconv`` plus the mask units' Linear
  layers and the classifier;
* ``executed``: what the execution that ran computed: a sparse block its GEMMs on the
  gathered rows (the 3x3 over all 9 taps of each window, zero border rows included, and
  the folded batch norms' bias adds; at tile granularity every position of the active tiles
  and their halo; a 1x1 downsample as the GEMM it runs, its folded batch norm's bias adds
  included), a masked block its convs at every position; the mask unit as it runs
  (:meth:`~dynbench.ops.dynconv.MaskUnit.executed_madds`), the dense convs as they are, and
  the classifier.

``detail``: each block's measured density and dilated density, and for a sparse block the
granularity it ran at (and, when ``auto`` chose it, the trial timings in ms).
"""

from __future__ import annotations

import torch
from torch import nn

from dynbench.measure.shape_counters import leaf_calls
from dynbench.models.masked_blocks import MASK, spatial_blocks
from dynbench.ops.base import fc_madds
from dynbench.ops.dynconv_rows import shortcut_pairs


def _conv_madds_at(conv: nn.Conv2d, positions: int) -> int:
    """A conv computed at ``positions`` output positions, bias adds included."""
    per_position = conv.weight.numel() + (conv.out_channels if conv.bias is not None else 0)
    return positions * per_position


def conditional_madds(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, int], list[dict]]:
    """({method: MAdds} for one masked forward on ``x``, per-block densities)."""
    blocks = list(spatial_blocks(model))
    with torch.no_grad():  # settles every auto granularity: its trials would be counted too
        model(x)
    masked_convs = {id(conv) for b in blocks for conv, _ in b.branch_convs()}
    # every conv outside the masked branches runs everywhere (a mask unit is a leaf of its own)
    dense = sum(
        _conv_madds_at(module, output.numel() // module.out_channels)
        for _, module, _, output in leaf_calls(model, x, "conv_linear_madds")
        if isinstance(module, nn.Conv2d) and id(module) not in masked_convs
    )
    total = executed = dense
    linear = 0
    detail = []
    for block in blocks:
        if not block.masks:
            raise RuntimeError("conditional MAdds need a masked or sparse forward")
        ran = block.sparse_positions() if block.ran == "sparse" else None
        for k, (conv, which) in enumerate(block.branch_convs()):
            positions = block.masks[which]
            total += _conv_madds_at(conv, int(positions.sum()))
            if ran:  # at its rows, plus the folded BN's bias adds
                executed += ran[k] * (conv.weight.numel() + conv.out_channels)
            else:
                executed += _conv_madds_at(conv, positions.numel())
        mask = block.masks[MASK]
        if ran and block.ran_granularity != "dense":
            # a sparse block runs a 1x1 downsample as a GEMM on the strided rows, folded with
            # its batch norm: no module call for the forward's hooks to see
            for conv, _ in shortcut_pairs(block.block):
                total += _conv_madds_at(conv, mask.numel())
                executed += mask.numel() * (conv.weight.numel() + conv.out_channels)
        total += block.masker.madds(tuple(mask.shape))
        linear += fc_madds(mask.shape[0], block.masker.fc.in_features, 1)
        executed += block.masker.executed_madds(block.input_shape, tuple(mask.shape))
        detail.append(
            {
                "block": block.index,
                "density": round(float(mask.mean()), 4),
                "dilated_density": round(float(block.masks["dilated"].mean()), 4),
                **({"granularity": block.ran_granularity} if ran else {}),
                **({"trial_ms": block.trial_ms} if ran and block.granularity == "auto" else {}),
            }
        )
    units = {id(b.masker.fc) for b in blocks}
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and id(m) not in units]
    classifier = sum(fc_madds(x.shape[0], m.in_features, m.out_features) for m in heads[-1:])
    madds = {
        "dynconv": total,
        "conv_linear": total + linear + classifier,
        "executed": executed + classifier,
    }
    return madds, detail
