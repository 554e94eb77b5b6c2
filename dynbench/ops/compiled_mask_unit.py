"""Spatial DynConv's mask-unit logits as compiled loops (:mod:`dynbench.ops.compiled`): from the
unit's tap maps, or straight from the block's input as one 3x3 stencil.

The unit's GEMM (:meth:`dynbench.ops.dynconv.MaskUnit.forward`) leaves ten maps: the 9 taps of
the 3x3 conv and the Linear's row at every input position. The logits are the 9 maps, each
shifted by its offset, summed at every (strided) output, plus the tenth map's mean and both
biases. As PyTorch ops that is a pad, a strided view, two reductions and three adds, a
fixed cost per block that at batch 1 rivals the GEMM itself (``reports/sparsity/
mask-unit-cost.md``); :func:`mask_logits` reads each map once.

On small inputs (MobileNetV2's blocks) the GEMM itself is mostly fixed cost: its call, its
(10, H W) output, a second pass over that output. :func:`stencil_logits` skips it: one pass over
each channel plane adds the 3x3 conv's 9 products into the output rows and the plane's sum into
the pooled logit. It runs fewer multiply-adds per second than the GEMM, so it pays only while
the input is small (:data:`dynbench.ops.dynconv.STENCIL_MAX_ROWS`). Where a loop does not
apply or did not build, its wrapper answers None and the unit runs PyTorch's ops.
"""

from __future__ import annotations

from torch import Tensor

from dynbench.ops import compiled

FUNCTIONS = ("mask_logits", "stencil_logits")

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <vector>

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

// Output row `row` (width W) += the 3x3 taps `w` (ky, kx order) over input rows `above`, `at`
// and `below` (a zero row where outside the map), at columns j - 1, j, j + 1 inside [0, W)
static inline void stencil_row(float* __restrict row, const float* __restrict above,
                               const float* __restrict at, const float* __restrict below,
                               const float* w, int64_t width) {
  if (width == 1) {
    row[0] += w[1] * above[0] + w[4] * at[0] + w[7] * below[0];
    return;
  }
  row[0] += w[1] * above[0] + w[2] * above[1] + w[4] * at[0] + w[5] * at[1] + w[7] * below[0] +
            w[8] * below[1];
  for (int64_t j = 1; j < width - 1; ++j)
    row[j] += w[0] * above[j - 1] + w[1] * above[j] + w[2] * above[j + 1] + w[3] * at[j - 1] +
              w[4] * at[j] + w[5] * at[j + 1] + w[6] * below[j - 1] + w[7] * below[j] +
              w[8] * below[j + 1];
  const int64_t e = width - 1;
  row[e] += w[0] * above[e - 1] + w[1] * above[e] + w[3] * at[e - 1] + w[4] * at[e] +
            w[6] * below[e - 1] + w[7] * below[e];
}

// Spatial DynConv's mask-unit logits (B, 1, H, W) straight from x (B, C, H, W), fp32, NCHW
// contiguous: the 3x3 conv C -> 1 of stride 1 and padding 1 (`taps` (C, 9)), plus the Linear
// (`linear` (C)) on x's mean over the positions and both biases
torch::Tensor stencil_logits(torch::Tensor x, torch::Tensor taps, torch::Tensor linear,
                             torch::Tensor conv_bias, torch::Tensor fc_bias) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous(), "stencil_logits: x must be NCHW contiguous");
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  TORCH_CHECK(taps.numel() == 9 * channels && linear.numel() == channels,
              "stencil_logits: taps must be (C, 9) and linear (C)");
  const int64_t plane = height * width;
  auto out = torch::empty({batch, 1, height, width}, x.options());
  const float bias = conv_bias.data_ptr<float>()[0] + fc_bias.data_ptr<float>()[0];
  const float* xs = x.data_ptr<float>();
  const float* ws = taps.data_ptr<float>();
  const float* fs = linear.data_ptr<float>();
  float* logits = out.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    const std::vector<float> zeros(width, 0.f);
    for (int64_t b = begin; b < end; ++b) {
      float* image = logits + b * plane;
      std::fill(image, image + plane, 0.f);
      float pooled = 0.f;
      for (int64_t c = 0; c < channels; ++c) {
        const float* p = xs + (b * channels + c) * plane;
        float sum = 0.f;
        for (int64_t k = 0; k < plane; ++k) sum += p[k];
        pooled += fs[c] * sum;
        for (int64_t i = 0; i < height; ++i) {
          const float* above = i > 0 ? p + (i - 1) * width : zeros.data();
          const float* below = i + 1 < height ? p + (i + 1) * width : zeros.data();
          stencil_row(image + i * width, above, p + i * width, below, ws + 9 * c, width);
        }
      }
      const float start = pooled / plane + bias;
      for (int64_t k = 0; k < plane; ++k) image[k] += start;
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


def stencil_logits(
    x: Tensor, taps: Tensor, linear: Tensor, conv_bias: Tensor, fc_bias: Tensor
) -> Tensor | None:
    """The unit's logits (B, 1, H, W) straight from its input x (B, C, H, W), for a stride-1
    unit: ``taps`` its conv's weight (1, C, 3, 3), ``linear`` its Linear's (1, C); None where
    the loop does not apply (x not NCHW contiguous, :func:`dynbench.ops.compiled.loops_for`)
    or the build failed."""
    if not x.is_contiguous():
        return None
    module = compiled.loops_for(x, taps, linear, conv_bias, fc_bias)
    if module is None:
        return None
    return module.stencil_logits(
        x, compiled.operand(taps), compiled.operand(linear), conv_bias, fc_bias
    )
