#!/usr/bin/env python3
"""Where ODConv's overhead over the static model goes, stage by stage, in one process.

For each ODConv model, builds the static backbone and five copies of the ODConv model (same
weights) whose ODConv layers each run a cumulative stage of the layer's eval forward:

* ``call``: the layer's call only (its kernel as a static conv: module dispatch, no attention);
* ``pool``: plus the attention branch's global average pooling, as PyTorch's op;
* ``linears``: plus the branch's two folded linears, ReLU and sigmoid as PyTorch's ops (the
  folded branch's arithmetic, ``ODConvAttention.folded_weights``);
* ``attention``: instead, the whole branch as the layer runs it (compiled where
  :mod:`dynbench.ops.compiled_attention` applies, with the weights' check, the split into the
  heads' attentions and the module call), the static conv still;
* ``full``: the layer as it runs (the route: kernel or map scaling, the input route).

All are timed interleaved (``dynbench.measure.timing.interleaved``: 1 thread, batch 1, one
turn per model per round in a shuffled order). Each stage's overhead over the static model
(latency ratio - 1, 95% interval) and its increment over the stage before say which part of
the layer the remaining time is in, measured in the model (caches as the model leaves them),
not layer by layer. Example:

    python scripts/odconv-overhead.py --models resnet18_odconv_1x,mobilenetv2_100_odconv_1x
"""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from timed_rounds import add_round_options, time_rounds
from torch import Tensor, nn

import dynbench
from dynbench.measure.timing import (
    inference_call,
    ratio_with_ci,
    set_threads,
)
from dynbench.models.registry import model_info
from dynbench.ops.odconv import ODConv2d

INPUT = (1, 3, 224, 224)


def static_conv(layer: ODConv2d, x: Tensor) -> Tensor:
    """The layer's first kernel as a static conv: what every stage but ``full`` returns."""
    return layer.conv(x, layer.weight[0])


def pooled(layer: ODConv2d, x: Tensor) -> Tensor:
    x.mean((2, 3))
    return static_conv(layer, x)


def linears(layer: ODConv2d, x: Tensor) -> Tensor:
    squeeze_w, squeeze_b, heads_w, heads_b = layer.attention.folded_weights(x)
    hidden = F.linear(x.mean((2, 3)), squeeze_w, squeeze_b).relu_()
    F.linear(hidden, heads_w, heads_b).sigmoid_()
    return static_conv(layer, x)


def attention(layer: ODConv2d, x: Tensor) -> Tensor:
    layer.attention(x)
    return static_conv(layer, x)


# stage name -> the ODConv layers' forward in that stage (None: the layer's own)
STAGES: dict[str, Callable[[ODConv2d, Tensor], Tensor] | None] = {
    "call": static_conv,
    "pool": pooled,
    "linears": linears,
    "attention": attention,
    "full": None,
}


def staged(model: nn.Module, stage: Callable[[ODConv2d, Tensor], Tensor] | None) -> nn.Module:
    """``model`` with each ODConv layer's forward replaced by ``stage`` (None: kept)."""
    if stage is not None:
        for layer in model.modules():
            if isinstance(layer, ODConv2d):
                layer.forward = types.MethodType(stage, layer)
    return model


def profile_model(name: str, args: argparse.Namespace) -> list[str]:
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    backbone = model_info(name).family
    models: dict[str, nn.Module] = {"static": dynbench.create_model(backbone).eval()}
    reference = dynbench.create_model(name).eval()
    for stage, forward in STAGES.items():
        model = dynbench.create_model(name).eval()
        model.load_state_dict(reference.state_dict())
        models[stage] = staged(model, forward)
    calls = {stage: inference_call(model, x) for stage, model in models.items()}
    result, summary = time_rounds(name, calls, args)
    timed, static = result.timed, result.timed["static"]
    lines = [
        f"**{name}** (static: {backbone}): {summary}; "
        f"static {static.median * 1e3:.2f} ms (IQR {static.iqr / static.median:.1%})",
        "",
        "| stage | overhead over static [95%] | ms over static | this stage adds (ms) | IQR |",
        "|---|---|---|---|---|",
    ]
    previous = 0.0
    for stage in STAGES:
        ratio, low, high = ratio_with_ci(timed[stage], static)
        over_ms = (ratio - 1) * static.median * 1e3
        lines.append(
            f"| {stage} | {ratio - 1:.3f} [{low - 1:.3f}, {high - 1:.3f}] | {over_ms:.2f} | "
            f"{over_ms - previous:+.2f} | {timed[stage].iqr / timed[stage].median:.1%} |"
        )
        previous = over_ms
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet18_odconv_1x,mobilenetv2_100_odconv_1x")
    add_round_options(parser)
    args = parser.parse_args()
    set_threads(1)
    for name in args.models.split(","):
        print("\n".join(profile_model(name, args)) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
