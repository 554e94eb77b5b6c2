"""Spatial DynConv's mask-unit logits from the unit's tap maps, as one compiled loop
(:mod:`dynbench.ops.compiled`).

The unit's GEMM (:meth:`dynbench.ops.dynconv.MaskUnit.forward`) leaves ten maps: the 9 taps of
the 3x3 conv and the Linear's row at every input position. The logits are the 9 maps, each
shifted by its offset, summed at every (strided) output, plus the tenth map's mean and both
biases. As PyTorch ops that is a pad, a strided view, two reductions and three adds, a
fixed cost per block that at batch 1 rivals the GEMM itself (``reports/sparsity/
mask-unit-cost.md``); the loop below reads each map once. Where it does not apply or did not
build, :func:`mask_logits` answers None and the unit runs PyTorch's ops.
"""

from __future__ import annotations

from torch import Tensor

from dynbench.ops import compiled

FUNCTION = "mask_logits"

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>

// One image's logits (out_h, out_w): the 9 tap maps of `maps` (each (H, W), `tap_stride`
// apart, rows contiguous), the map of tap 3 ky + kx read at (S oi + ky - 1, S oj + kx - 1)
// where that lies inside, summed, plus `start`. S = 0: the stride is `stride` (not 1 or 2).
template <int S>
static void shift_sum(const float* maps, int64_t tap_stride, int64_t height, int64_t width,
                      int64_t stride, float start, int64_t out_h, int64_t out_w, float* out) {
  const int64_t s = S ? S : stride;
  for (int64_t oi = 0; oi < out_h; ++oi) {
    float* row = out + oi * out_w;
    std::fill(row, row + out_w, start);
    for (int64_t ky = 0; ky < 3; ++ky) {
      const int64_t i = s * oi + ky - 1;
      if (i < 0 || i >= height) continue;
      for (int64_t kx = 0; kx < 3; ++kx) {
        const float* tap = maps + (3 * ky + kx) * tap_stride + i * width;
        // columns s oj + kx - 1 inside [0, width)
        const int64_t first = kx == 0 ? 1 : 0;
        const int64_t last = width < kx ? 0 : std::min(out_w, (width - kx) / s + 1);
        for (int64_t oj = first; oj < last; ++oj) row[oj] += tap[s * oj + kx - 1];
      }
    }
  }
}

// Spatial DynConv's mask-unit logits (B, 1, H_out, W_out) from maps (10, B, H, W), fp32, each
// map's rows contiguous: the 9 tap maps of the 3x3 conv (padding 1, `stride`) shifted and
// summed, plus the mean of the 10th map (the Linear's row) and both biases
torch::Tensor mask_logits(torch::Tensor maps, torch::Tensor conv_bias, torch::Tensor fc_bias,
                          int64_t stride) {
  const int64_t batch = maps.size(1), height = maps.size(2), width = maps.size(3);
  TORCH_CHECK(maps.size(0) == 10 && maps.stride(3) == 1 && maps.stride(2) == width,
              "mask_logits: maps must be (10, B, H, W) with contiguous rows");
  TORCH_CHECK(stride >= 1, "mask_logits: stride must be positive");
  const int64_t out_h = (height - 1) / stride + 1, out_w = (width - 1) / stride + 1;
  const int64_t tap_stride = maps.stride(0), image_stride = maps.stride(1);
  auto out = torch::empty({batch, 1, out_h, out_w}, maps.options());
  const float bias = conv_bias.data_ptr<float>()[0] + fc_bias.data_ptr<float>()[0];
  const float* base = maps.data_ptr<float>();
  float* logits = out.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* image = base + b * image_stride;
      const float* linear = image + 9 * tap_stride;
      float sum = 0.f;
      for (int64_t k = 0; k < height * width; ++k) sum += linear[k];
      const float start = sum / (height * width) + bias;
      float* out_b = logits + b * out_h * out_w;
      if (stride == 1)
        shift_sum<1>(image, tap_stride, height, width, 1, start, out_h, out_w, out_b);
      else if (stride == 2)
        shift_sum<2>(image, tap_stride, height, width, 2, start, out_h, out_w, out_b);
      else
        shift_sum<0>(image, tap_stride, height, width, stride, start, out_h, out_w, out_b);
    }
  });
  return out;
}
"""


def mask_logits(maps: Tensor, conv_bias: Tensor, fc_bias: Tensor, stride: int) -> Tensor | None:
    """The unit's logits (B, 1, H_out, W_out) from its ten maps (10, B, H, W); None where the
    loop does not apply (rows not contiguous, :func:`dynbench.ops.compiled.loops_for`) or the
    build failed."""
    if maps.stride(3) != 1 or maps.stride(2) != maps.shape[3]:
        return None
    module = compiled.loops_for(maps, conv_bias, fc_bias)
    if module is None:
        return None
    return module.mask_logits(maps, conv_bias, fc_bias, stride)
