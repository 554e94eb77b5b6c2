"""ODConv's folded attention branch as one compiled loop (:mod:`dynbench.ops.compiled`).

At batch 1 the branch is a handful of tiny ops (pool, two linears, ReLU, the gates' sigmoid),
and in a model each pays its dispatch cold: on a MobileNetV2 their time was most of ODConv's
overhead (``reports/floor/odconv-overhead.md``'s stages). One C++ loop over the input does all of
them (``reports/floor/odconv-before-after.md``: what it saved). Where it does not apply or did
not build, :func:`branch_logits` answers None and the operator runs PyTorch's ops.
"""

from __future__ import annotations

from torch import Tensor

from dynbench.ops import compiled

FUNCTION = "branch_logits"

SOURCE = r"""
#include <torch/extension.h>
#include <cmath>
#include <vector>

// ODConv's folded attention branch for each image of x (B, C, H, W), fp32, contiguous:
// heads_w relu(squeeze_w mean(x_b) + squeeze_b) + heads_b, the first `gates` of each row of
// logits through a sigmoid, the rest (the kernel head's) left as they are
torch::Tensor branch_logits(torch::Tensor x, torch::Tensor squeeze_w, torch::Tensor squeeze_b,
                            torch::Tensor heads_w, torch::Tensor heads_b, int64_t gates) {
  const int64_t batch = x.size(0), channels = x.size(1), positions = x.size(2) * x.size(3);
  const int64_t hidden = squeeze_w.size(0), rows = heads_w.size(0);
  auto out = torch::empty({batch, rows}, x.options());
  std::vector<float> pooled(channels), squeezed(hidden);
  const float* w1 = squeeze_w.data_ptr<float>();
  const float* b1 = squeeze_b.data_ptr<float>();
  const float* w2 = heads_w.data_ptr<float>();
  const float* b2 = heads_b.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) {
    const float* image = x.data_ptr<float>() + b * channels * positions;
    for (int64_t c = 0; c < channels; ++c) {
      const float* map = image + c * positions;
      float sum = 0.f;
      for (int64_t i = 0; i < positions; ++i) sum += map[i];
      pooled[c] = sum / positions;
    }
    for (int64_t h = 0; h < hidden; ++h) {
      float sum = b1[h];
      for (int64_t c = 0; c < channels; ++c) sum += w1[h * channels + c] * pooled[c];
      squeezed[h] = sum > 0.f ? sum : 0.f;
    }
    float* logits = out.data_ptr<float>() + b * rows;
    for (int64_t r = 0; r < rows; ++r) {
      float sum = b2[r];
      for (int64_t h = 0; h < hidden; ++h) sum += w2[r * hidden + h] * squeezed[h];
      logits[r] = r < gates ? 1.f / (1.f + std::exp(-sum)) : sum;
    }
  }
  return out;
}
"""


def branch_logits(
    x: Tensor, squeeze_w: Tensor, squeeze_b: Tensor, heads_w: Tensor, heads_b: Tensor, gates: int
) -> Tensor | None:
    """(B, rows) logits of the folded branch, the first ``gates`` columns through a sigmoid;
    None where it does not apply (a contiguous map, :func:`dynbench.ops.compiled.loops_for`)
    or the build failed."""
    module = compiled.loops_for(x) if x.is_contiguous() else None
    if module is None:
        return None
    return module.branch_logits(x, squeeze_w, squeeze_b, heads_w, heads_b, gates)
