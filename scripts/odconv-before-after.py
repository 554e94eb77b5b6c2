#!/usr/bin/env python3
"""Time ODConv's fast path beside an earlier revision of it, in one process.

Builds, for each backbone, the static model and the ODConv 1x and 4x models twice
with the same weights: once as the working tree's ``dynbench.ops.odconv`` runs them
("after") and once with every ODConv layer's class swapped for the classes of
``dynbench/ops/odconv*.py`` at the git revision ``--before`` ("before"). All of them
are timed interleaved (``dynbench.measure.timing.interleaved``: 1 thread, batch 1,
one turn per model per round in a shuffled order); each row gives both overheads
over the same static model (latency ratio - 1) with 95% intervals and their quotient
after / before with a bootstrap interval. Both versions are first checked against
the naive path (rtol 1e-5). Example:

    python scripts/odconv-before-after.py --before HEAD~1 --backbones resnet18
"""

from __future__ import annotations

import argparse
import sys
import types

import torch
from revision_modules import PREFIX, modules_at
from timed_rounds import add_round_options, time_rounds
from torch import nn

import dynbench
from dynbench.measure.timing import (
    inference_call,
    overhead_quotient_interval,
    ratio_with_ci,
    set_threads,
)
from dynbench.ops.base import implementations, set_impl
from dynbench.ops.odconv import ODConv2d

INPUT = (1, 3, 224, 224)


def old_module(revision: str) -> types.ModuleType:
    """``dynbench.ops.odconv`` as it was at ``revision``, with the odconv modules beside it
    (``odconv_attention``) as they were then too. A revision from before ``ops/base.py`` was
    split (fe992f8, the issue-27 baseline) imports names today's base no longer holds: its
    ``base.py`` is then loaded from the revision as well."""
    try:
        modules = modules_at(revision, r"dynbench/ops/odconv\w*\.py")
    except ImportError:
        modules = modules_at(revision, r"dynbench/ops/(odconv\w*|base)\.py")
    return modules["dynbench.ops.odconv"]


def as_before(model: nn.Module, old: types.ModuleType) -> nn.Module:
    """``model`` with each ODConv layer (and its attention) running ``old``'s code. The
    attention keeps its weights; any plain attribute ``old``'s constructor sets that today's
    does not (a revision's precomputed head widths) is taken from a fresh ``old`` attention
    of the same geometry, with every head (the registered ODConv models have all four)."""
    for layer in model.modules():
        if isinstance(layer, ODConv2d):
            layer.__class__ = old.ODConv2d
            attention = layer.attention
            attention.__class__ = old.ODConvAttention
            geometry = (layer.in_channels, layer.out_channels, layer.kernel_size)
            fresh = old.ODConvAttention(*geometry, layer.groups, layer.num_kernels)
            for name, value in vars(fresh).items():
                attention.__dict__.setdefault(name, value)
    return model


def old_layers(model: nn.Module) -> list[nn.Module]:
    """The operators running a revision's own base classes (see :func:`old_module`), which
    today's ``set_impl`` and ``implementations`` do not recognise as ``DynamicOp``."""
    return [
        layer
        for layer in model.modules()
        if type(layer).__module__.startswith(PREFIX) and hasattr(layer, "implementation")
    ]


def set_impl_any(model: nn.Module, impl: str) -> None:
    """``set_impl`` on today's operators and on a revision's own (:func:`old_layers`)."""
    set_impl(model, impl)
    for layer in old_layers(model):
        layer.set_impl(impl)


def routes_any(model: nn.Module) -> dict[str, int]:
    """``implementations`` counting a revision's own operators too (:func:`old_layers`)."""
    counts = implementations(model)
    for layer in old_layers(model):
        counts[layer.implementation()] = counts.get(layer.implementation(), 0) + 1
    return dict(sorted(counts.items()))


def check_fast_equals_naive(model: nn.Module, x: torch.Tensor, name: str) -> None:
    with torch.inference_mode():
        set_impl_any(model, "fast")
        fast = model(x)
        routes = routes_any(model)
        set_impl_any(model, "naive")
        naive = model(x)
        set_impl_any(model, "fast")
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)
    print(f"{name}: fast equals naive; routes {routes}", file=sys.stderr)


def time_backbone(backbone: str, old: types.ModuleType, args: argparse.Namespace) -> list[str]:
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    models: dict[str, nn.Module] = {backbone: dynbench.create_model(backbone).eval()}
    variants = [f"{backbone}_odconv_{v}" for v in args.variants]
    for name in variants:
        after = dynbench.create_model(name).eval()
        before = dynbench.create_model(name).eval()
        before.load_state_dict(after.state_dict())
        as_before(before, old)
        check_fast_equals_naive(after, x, f"{name} after")
        check_fast_equals_naive(before, x, f"{name} before")
        models[f"{name} after"], models[f"{name} before"] = after, before
    calls = {name: inference_call(model, x) for name, model in models.items()}
    result, summary = time_rounds(backbone, calls, args)
    timed, static = result.timed, result.timed[backbone]
    lines = [
        f"**{backbone}**: {summary}; static {static.median * 1e3:.2f} ms "
        f"(IQR {static.iqr / static.median:.1%})",
        "",
        "| model | overhead before [95%] | overhead after [95%] | after / before [95%] "
        "| ms before / after | IQR before / after |",
        "|---|---|---|---|---|---|",
    ]
    for name in variants:
        after, before = timed[f"{name} after"], timed[f"{name} before"]
        r_after, lo_after, hi_after = ratio_with_ci(after, static)
        r_before, lo_before, hi_before = ratio_with_ci(before, static)
        low, high = overhead_quotient_interval(after, before, static)
        lines.append(
            f"| {name} | {r_before - 1:.3f} [{lo_before - 1:.3f}, {hi_before - 1:.3f}] | "
            f"{r_after - 1:.3f} [{lo_after - 1:.3f}, {hi_after - 1:.3f}] | "
            f"{(r_after - 1) / (r_before - 1):.2f} [{low:.2f}, {high:.2f}] | "
            f"{before.median * 1e3:.2f} / {after.median * 1e3:.2f} | "
            f"{before.iqr / before.median:.1%} / {after.iqr / after.median:.1%} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision of the 'before' code")
    parser.add_argument("--backbones", default="resnet18,mobilenetv2_100")
    parser.add_argument("--variants", default="1x,4x")
    add_round_options(parser)
    args = parser.parse_args()
    args.variants = args.variants.split(",")
    set_threads(1)
    old = old_module(args.before)
    for backbone in args.backbones.split(","):
        print("\n".join(time_backbone(backbone, old, args)) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
