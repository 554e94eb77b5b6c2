#!/usr/bin/env python3
"""What spatial DynConv's mask units cost on their own, beside a full mask, in one process.

For each spatial DynConv model, times four copies with the same weights, interleaved (1 thread,
batch 1, one turn per model per round in a shuffled order):

* ``dense``: every spatial block runs its plain block (the mask unit is not called);
* ``dense + unit``: every block also computes its mask unit's logits and drops them, the
  least a block whose mask is full must add to the dense block;
* ``sparse, full mask``: sparse execution on blob masks of density 1.0 (``auto`` then runs
  each block's mask unit, then its plain block);
* ``masked, full mask``: the masked execution on the same masks (every conv everywhere,
  outputs times the masks: what the released classification code runs).

Each row gives its latency ratio to ``dense`` with a 95% interval: ``dense + unit`` is the
floor of what a full mask can cost with the paper's mask unit as this project computes it.
Example:

    python scripts/mask-unit-cost.py --models resnet50_dynconv,mobilenetv2_100_dynconv
"""

from __future__ import annotations

import argparse
import sys
import types

import torch
from timed_rounds import add_round_options, time_rounds
from torch import Tensor, nn

import dynbench
from dynbench.measure.allocator import pin
from dynbench.measure.timing import (
    inference_call,
    ratio_with_ci,
    set_threads,
)
from dynbench.models.masked_blocks import (
    SpatialBlock,
    set_execution,
    set_mask_source,
    spatial_blocks,
)
from dynbench.ops.dynconv import MaskSource

INPUT = (1, 3, 224, 224)


def block_and_unit(block: SpatialBlock, x: Tensor) -> Tensor:
    """The plain block, after the mask unit's logits (computed, then dropped)."""
    block.masker(x)
    return block.block(x)


def copy_of(name: str, reference: nn.Module, execution: str, unit: bool = False) -> nn.Module:
    """``name`` with ``reference``'s weights, its spatial blocks set to ``execution`` on blob
    masks of density 1.0; with ``unit``, each block runs :func:`block_and_unit` instead."""
    model = dynbench.create_model(name).eval()
    model.load_state_dict(reference.state_dict())
    set_mask_source(model, MaskSource("blob", 1.0))
    set_execution(model, execution)
    if unit:
        for block in spatial_blocks(model):
            block.forward = types.MethodType(block_and_unit, block)
    return model


def time_model(name: str, args: argparse.Namespace) -> list[str]:
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    reference = dynbench.create_model(name).eval()
    models = {
        "dense": copy_of(name, reference, "dense"),
        "dense + unit": copy_of(name, reference, "dense", unit=True),
        "sparse, full mask": copy_of(name, reference, "sparse"),
        "masked, full mask": copy_of(name, reference, "masked"),
    }
    calls = {label: inference_call(model, x) for label, model in models.items()}
    result, summary = time_rounds(name, calls, args)
    timed, dense = result.timed, result.timed["dense"]
    lines = [
        f"**{name}**: {summary}; dense {dense.median * 1e3:.2f} ms",
        "",
        "| execution | ms | ratio to dense [95%] | IQR |",
        "|---|---|---|---|",
    ]
    for label, run in timed.items():
        ratio, low, high = ratio_with_ci(run, dense)
        interval = "" if run is dense else f" [{low:.3f}, {high:.3f}]"
        lines.append(
            f"| {label} | {run.median * 1e3:.2f} | {ratio:.3f}{interval} | "
            f"{run.iqr / run.median:.1%} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet50_dynconv,mobilenetv2_100_dynconv")
    add_round_options(parser)
    args = parser.parse_args()
    set_threads(1)
    pin()  # as the sparsity suite runs: freed blocks stay mapped
    for name in args.models.split(","):
        print("\n".join(time_model(name, args)) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
