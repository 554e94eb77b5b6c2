#!/usr/bin/env python3
"""A trial, not part of dynbench's operators: ODConv's attention branch fused into one C++ op.

``reports/floor/odconv-overhead.md`` finds most of ODConv's remaining overhead at batch 1 in
its attention branches: pooling, two small linears and the gates, each an op that pays its
dispatch cold in the model. This script measures what fusing them would save before the
operator takes on a compiled path: it builds (``torch.utils.cpp_extension.load_inline``,
needs a C++ compiler and ninja; a few tens of seconds the first time, cached after) one loop
over the input that pools, applies the folded squeeze with its ReLU and the stacked heads
with the gates' sigmoid, and returns the logits, and times, interleaved in one process, the
static backbone, the ODConv model as it runs and the same model with its folded attention
computed by the trial op (fp32, batch 1, 1 thread; the kernel head's softmax, the split and
the routes stay as they are). Both ODConv models are first checked equal at rtol 1e-4.
Example:

    python scripts/fused-attention-trial.py --models resnet18_odconv_1x,mobilenetv2_100_odconv_1x
"""

from __future__ import annotations

import argparse
import sys
import time
import types

import torch
from timed_rounds import add_round_options, time_rounds
from torch import Tensor, nn
from torch.utils.cpp_extension import load_inline

import dynbench
from dynbench.measure.timing import (
    inference_call,
    ratio_with_ci,
    set_threads,
)
from dynbench.models.registry import model_info
from dynbench.ops.odconv_attention import Attentions, ODConvAttention

INPUT = (1, 3, 224, 224)

SOURCE = r"""
#include <torch/extension.h>
#include <cmath>
#include <vector>

// logits of ODConv's folded attention branch for one image x (1, C, H, W), fp32, contiguous:
// heads_w (relu(squeeze_w mean(x) + squeeze_b)) + heads_b, the first `gates` entries
// through a sigmoid
torch::Tensor branch_logits(torch::Tensor x, torch::Tensor squeeze_w, torch::Tensor squeeze_b,
                            torch::Tensor heads_w, torch::Tensor heads_b, int64_t gates) {
  const int64_t channels = x.size(1), positions = x.size(2) * x.size(3);
  const int64_t hidden = squeeze_w.size(0), rows = heads_w.size(0);
  std::vector<float> pooled(channels), squeezed(hidden);
  const float* in = x.data_ptr<float>();
  for (int64_t c = 0; c < channels; ++c) {
    const float* map = in + c * positions;
    float sum = 0.f;
    for (int64_t i = 0; i < positions; ++i) sum += map[i];
    pooled[c] = sum / positions;
  }
  const float* w1 = squeeze_w.data_ptr<float>();
  const float* b1 = squeeze_b.data_ptr<float>();
  for (int64_t h = 0; h < hidden; ++h) {
    float sum = b1[h];
    for (int64_t c = 0; c < channels; ++c) sum += w1[h * channels + c] * pooled[c];
    squeezed[h] = sum > 0.f ? sum : 0.f;
  }
  auto out = torch::empty({1, rows}, x.options());
  float* logits = out.data_ptr<float>();
  const float* w2 = heads_w.data_ptr<float>();
  const float* b2 = heads_b.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    float sum = b2[r];
    for (int64_t h = 0; h < hidden; ++h) sum += w2[r * hidden + h] * squeezed[h];
    logits[r] = r < gates ? 1.f / (1.f + std::exp(-sum)) : sum;
  }
  return out;
}
"""


def build() -> types.ModuleType:
    return load_inline(
        "dynbench_fused_attention_trial",
        cpp_sources=[SOURCE],
        functions=["branch_logits"],
        # the reductions vectorise only when their order may change; built for this CPU
        extra_cflags=["-O3", "-march=native", "-ffast-math"],
    )


def fused_forward(op: types.ModuleType) -> types.FunctionType:
    """A replacement for :meth:`ODConvAttention._forward_folded` calling ``op`` (batch 1)."""

    def forward(self: ODConvAttention, x: Tensor) -> Attentions:
        squeeze_w, squeeze_b, heads_w, heads_b = self.folded_weights(x)
        kernel_rows = 0 if self.kernel_fc is None else self.kernel_fc.out_channels
        gates = heads_w.shape[0] - kernel_rows
        logits = op.branch_logits(x.contiguous(), squeeze_w, squeeze_b, heads_w, heads_b, gates)
        parts = [*logits.split_with_sizes(self._split, 1), None]
        if self.kernel_fc is not None:
            parts[-2] = torch.softmax(parts[-2], dim=1)
        return tuple(parts[i] for i in self._take)

    return forward


def with_fused_attention(model: nn.Module, forward: types.FunctionType) -> nn.Module:
    for module in model.modules():
        if isinstance(module, ODConvAttention):
            module._forward_folded = types.MethodType(forward, module)
    return model


def time_model(name: str, forward: types.FunctionType, args: argparse.Namespace) -> list[str]:
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    backbone = model_info(name).family
    now = dynbench.create_model(name).eval()
    fused = dynbench.create_model(name).eval()
    fused.load_state_dict(now.state_dict())
    with_fused_attention(fused, forward)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), now(x), rtol=1e-4, atol=1e-4)
    models = {"static": dynbench.create_model(backbone).eval(), "now": now, "fused": fused}
    calls = {label: inference_call(model, x) for label, model in models.items()}
    result, summary = time_rounds(name, calls, args)
    timed, static = result.timed, result.timed["static"]
    lines = [
        f"**{name}**: {summary}; static {static.median * 1e3:.2f} ms "
        f"(IQR {static.iqr / static.median:.1%})",
        "",
        "| attention | overhead over static [95%] | ms over static | IQR |",
        "|---|---|---|---|",
    ]
    for label in ("now", "fused"):
        ratio, low, high = ratio_with_ci(timed[label], static)
        over_ms = (ratio - 1) * static.median * 1e3
        spread = timed[label].iqr / timed[label].median
        lines.append(
            f"| {label} | {ratio - 1:.3f} [{low - 1:.3f}, {high - 1:.3f}] | {over_ms:.2f} | "
            f"{spread:.1%} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet18_odconv_1x,mobilenetv2_100_odconv_1x")
    add_round_options(parser)
    args = parser.parse_args()
    set_threads(1)
    started = time.perf_counter()
    forward = fused_forward(build())
    print(f"built in {time.perf_counter() - started:.0f} s\n", flush=True)
    for name in args.models.split(","):
        print("\n".join(time_model(name, forward, args)) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
