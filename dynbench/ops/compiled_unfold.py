"""ODConv's input route: the input unfolded and scaled by a_s x a_c in one compiled pass
(:mod:`dynbench.ops.compiled`).

The input route (:meth:`dynbench.ops.odconv.ODConv2d._forward_input_side`) multiplies the static
kernel by the unfolded input, each row (input channel c, kernel position t) scaled by a_c[c]
a_s[t]. ``F.unfold`` walks the map one element at a time with a bounds check each, and the
scaling is a second pass over its output: on the deep 7 x 7 layers of a ResNet together about
a tenth of the conv's own time. The loop below writes each row once, a contiguous copy of the
map's row segments times the row's scale, zeros where the window leaves the map. Where it
does not apply or did not build, :func:`scaled_unfold` answers None and the route runs
PyTorch's ops.
"""

from __future__ import annotations

from torch import Tensor

from dynbench.ops import compiled

FUNCTION = "scaled_unfold"

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>

// One row (c, ky, kx) of the unfolded map: out_h rows of out_w outputs, output (oi, oj) the
// plane's (stride oi + ky - padding, stride oj + kx - padding) times scale, 0 outside.
// OW > 0: out_w known when compiled (short rows then unroll instead of looping).
template <int OW>
static void unfold_row(const float* plane, int64_t height, int64_t width, int64_t out_h,
                       int64_t out_w_arg, int64_t stride, int64_t padding, int64_t ky,
                       int64_t kx, float scale, float* row) {
  const int64_t out_w = OW ? OW : out_w_arg;
  // columns oj whose input column stride oj + kx - padding lies inside the map
  const int64_t lead = std::max<int64_t>(0, (padding - kx + stride - 1) / stride);
  const int64_t first = std::min(out_w, lead);
  const int64_t reach = width - 1 + padding - kx;  // stride oj <= reach
  const int64_t fits = reach < 0 ? 0 : std::min(out_w, reach / stride + 1);
  const int64_t last = std::max(first, fits);
  for (int64_t oi = 0; oi < out_h; ++oi) {
    float* dst = row + oi * out_w;
    const int64_t i = oi * stride + ky - padding;
    if (i < 0 || i >= height) {
      for (int64_t oj = 0; oj < out_w; ++oj) dst[oj] = 0.f;
      continue;
    }
    const float* src = plane + i * width + kx - padding;
    for (int64_t oj = 0; oj < out_w; ++oj) {
      const bool inside = oj >= first && oj < last;
      dst[oj] = inside ? src[inside ? oj * stride : 0] * scale : 0.f;
    }
  }
}

// F.unfold(x, k, 1, padding, stride) (B, C k k, H' W') with row (c, t) of sample b times
// channel[b, c] spatial[b, t] (an empty attention is all ones); x (B, C, H, W) fp32, contiguous
torch::Tensor scaled_unfold(torch::Tensor x, torch::Tensor spatial, torch::Tensor channel,
                            int64_t k, int64_t stride, int64_t padding) {
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t out_h = (height + 2 * padding - k) / stride + 1;
  const int64_t out_w = (width + 2 * padding - k) / stride + 1;
  const int64_t taps = k * k, positions = out_h * out_w;
  auto out = torch::empty({batch, channels * taps, positions}, x.options());
  const float* xs = x.data_ptr<float>();
  const float* s = spatial.numel() ? spatial.data_ptr<float>() : nullptr;
  const float* c = channel.numel() ? channel.data_ptr<float>() : nullptr;
  float* os = out.data_ptr<float>();
  auto row = out_w == 7    ? unfold_row<7>
             : out_w == 14 ? unfold_row<14>
             : out_w == 28 ? unfold_row<28>
                           : unfold_row<0>;
  at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / channels;
      const float a_c = c ? c[item] : 1.f;
      const float* plane = xs + item * height * width;
      for (int64_t ky = 0; ky < k; ++ky)
        for (int64_t kx = 0; kx < k; ++kx) {
          const float scale = a_c * (s ? s[b * taps + ky * k + kx] : 1.f);
          float* dst = os + (item * taps + ky * k + kx) * positions;
          row(plane, height, width, out_h, out_w, stride, padding, ky, kx, scale, dst);
        }
    }
  });
  return out;
}
"""


def scaled_unfold(
    x: Tensor,
    spatial: Tensor | None,
    channel: Tensor | None,
    kernel_size: int,
    stride: int,
    padding: int,
) -> Tensor | None:
    """``F.unfold(x, kernel_size, 1, padding, stride)`` (B, C k k, H' W') with each row
    (c, t) times ``channel`` (B, C) at c and ``spatial`` (B, k k) at t, either None for all
    ones; None where the loop does not apply (a contiguous map,
    :func:`dynbench.ops.compiled.loops_for`) or the build failed."""
    module = compiled.loops_for(x, spatial, channel) if x.is_contiguous() else None
    if module is None:
        return None
    scales = map(compiled.operand, (spatial, channel))
    return module.scaled_unfold(x, *scales, kernel_size, stride, padding)
