#!/usr/bin/env python3
"""Time spatial DynConv's sparse execution beside an earlier revision of it, in one process.

For each backbone it builds the dense model and, at each blob density, the sparse model
twice with the same weights: once as the working tree runs it ("after") and once with every
spatial block rebuilt from the classes of ``dynbench/models/masked_blocks.py`` (named
``spatial.py`` before) and the ops modules it imports (``dynbench/ops/dynconv*.py``) at the
git revision ``--before`` ("before"). All are
timed interleaved (``dynbench.measure.timing.interleaved``: 1 thread, batch 1, one turn per
model per round in a shuffled order); each row gives sparse / dense for both with 95%
intervals. Both sparse versions are first checked against the masked execution (rtol 1e-5).
Example:

    python scripts/spatial-before-after.py --before HEAD~1 --backbones resnet50
"""

from __future__ import annotations

import argparse
import sys
import types

import torch
from revision_modules import modules_at
from timed_rounds import time_rounds
from torch import nn

import dynbench
from dynbench.measure.allocator import ALLOCATORS, allocator, pin
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


def old_modules(revision: str) -> types.ModuleType:
    """The spatial blocks' module as it was at ``revision`` (``models/masked_blocks.py``,
    named ``models/spatial.py`` before), importing the old ``ops/dynconv*`` modules."""
    loaded = modules_at(revision, r"dynbench/(ops/dynconv\w*|models/(spatial|masked_blocks))\.py")
    return loaded.get("dynbench.models.masked_blocks") or loaded["dynbench.models.spatial"]


def as_before(model: nn.Module, old: types.ModuleType) -> nn.Module:
    """``model`` with each spatial block rebuilt from ``old``'s class of the same name,
    around the same backbone block and with the same mask unit weights."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SpatialBlock):
                rebuilt = getattr(old, type(child).__name__)(child.block, child.index)
                rebuilt.masker.load_state_dict(child.masker.state_dict())
                rebuilt.source, rebuilt.execution = child.source, child.execution
                setattr(parent, name, rebuilt.eval())
    return model


def sparse_model(backbone: str, density: float, state: dict, old=None) -> nn.Module:
    model = dynbench.create_model(f"{backbone}_dynconv").eval()
    model.load_state_dict(state)
    set_mask_source(model, MaskSource("blob", density))
    set_execution(model, "sparse")
    return as_before(model, old) if old is not None else model


def check_sparse_equals_masked(model: nn.Module, x: torch.Tensor, name: str) -> None:
    blocks = [b for b in model.modules() if hasattr(b, "execution") and hasattr(b, "masker")]
    with torch.inference_mode():
        sparse = model(x)
        ran = sorted({getattr(b, "implementation", b.ran) for b in blocks})
        for block in blocks:
            block.execution = "masked"
        masked = model(x)
        for block in blocks:
            block.execution = "sparse"
    torch.testing.assert_close(sparse, masked, rtol=1e-5, atol=1e-5)
    print(f"{name}: sparse equals masked; ran {ran}", file=sys.stderr)


def time_backbone(backbone: str, old: types.ModuleType, args: argparse.Namespace) -> list[str]:
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    dense = dynbench.create_model(f"{backbone}_dynconv").eval()
    set_execution(dense, "dense")
    state = dense.state_dict()
    models: dict[str, nn.Module] = {"dense": dense}
    for density in args.densities:
        for side, module in (("after", None), ("before", old)):
            name = f"d={density} {side}"
            models[name] = sparse_model(backbone, density, state, module)
            check_sparse_equals_masked(models[name], x, f"{backbone} {name}")
    calls = {name: inference_call(model, x) for name, model in models.items()}
    result, summary = time_rounds(backbone, calls, args)
    timed, base = result.timed, result.timed["dense"]
    lines = [
        f"**{backbone}_dynconv**: {summary}, allocator {allocator()}; "
        f"dense {base.median * 1e3:.2f} ms "
        f"(IQR {base.iqr / base.median:.1%})",
        "",
        "| blob density | sparse / dense before [95%] | after [95%] | ms before / after "
        "| IQR before / after | after ran |",
        "|---|---|---|---|---|---|",
    ]
    for density in args.densities:
        after, before = timed[f"d={density} after"], timed[f"d={density} before"]
        r_a, lo_a, hi_a = ratio_with_ci(after, base)
        r_b, lo_b, hi_b = ratio_with_ci(before, base)
        implementations = sorted(
            {b.implementation for b in spatial_blocks(models[f"d={density} after"])}
        )
        lines.append(
            f"| {density} | {r_b:.3f} [{lo_b:.3f}, {hi_b:.3f}] | {r_a:.3f} [{lo_a:.3f}, "
            f"{hi_a:.3f}] | {before.median * 1e3:.2f} / {after.median * 1e3:.2f} | "
            f"{before.iqr / before.median:.1%} / {after.iqr / after.median:.1%} | "
            f"{', '.join(implementations)} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision of the 'before' code")
    parser.add_argument("--backbones", default="resnet50,mobilenetv2_100")
    parser.add_argument("--densities", default="0.25,1.0")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--min-run-time", type=float, default=2.0)
    parser.add_argument(
        "--allocator",
        choices=ALLOCATORS,
        default="pinned",
        help="pinned (the sparsity suite's setting: freed activations stay mapped) or system",
    )
    args = parser.parse_args()
    if args.allocator == "pinned":
        pin()
    args.densities = [float(d) for d in args.densities.split(",")]
    set_threads(1)
    old = old_modules(args.before)
    for backbone in args.backbones.split(","):
        print("\n".join(time_backbone(backbone, old, args)) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
