"""ODConv's per-sample kernel, mixed and scaled in one compiled pass (:mod:`dynbench.ops.compiled`).

On the mixed route (:meth:`dynbench.ops.odconv.ODConv2d._forward_fast`) a sample's kernel is
sum_i a_w,i W_i, scaled by a_s per kernel position and, at batch 1, by a_c per input channel and
a_f per filter where those go on the kernel. As PyTorch ops that is a matrix product over the n
kernels and up to two scaling passes, each of which writes the whole kernel and reads it back:
on a large kernel, memory traffic the conv itself never needed. The loop below reads the n
kernels once and writes the scaled kernel once. Where it does not apply or did not build,
:func:`scaled_kernel` answers None and the route runs PyTorch's ops.
"""

from __future__ import annotations

from torch import Tensor

from dynbench.ops import compiled
from dynbench.ops.buffers import kernel_buffer

FUNCTION = "scaled_kernel"

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <vector>

// ODConv's kernels into out (B, C_out, C_in / g, k k): for sample b and filter o,
// out[b, o] = sum_i mix[b, i] weight[i, o] (weight[0, o] where mix is empty) times, element
// (c, t) of the filter's row, spatial[b, t] channel[b, g_o C_in / g + c] filt[b, o]; an empty
// attention is all ones. weight (n, C_out, C_in / g, k k), all fp32 and contiguous.
void scaled_kernel(torch::Tensor weight, torch::Tensor mix, torch::Tensor spatial,
                   torch::Tensor channel, torch::Tensor filt, int64_t groups, torch::Tensor out) {
  const int64_t kernels = weight.size(0), filters = weight.size(1);
  const int64_t cin_g = weight.size(2), taps = weight.size(3), row = cin_g * taps;
  const int64_t batch = out.size(0), per_group = filters / groups;
  const float* w = weight.data_ptr<float>();
  const float* m = mix.numel() ? mix.data_ptr<float>() : nullptr;
  const float* s = spatial.numel() ? spatial.data_ptr<float>() : nullptr;
  const float* c = channel.numel() ? channel.data_ptr<float>() : nullptr;
  const float* f = filt.numel() ? filt.data_ptr<float>() : nullptr;
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, batch * filters, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scales(row);
    int64_t held = -1;  // (sample, group) whose row scales are in `scales`
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / filters, o = item % filters, group = o / per_group;
      if (b * groups + group != held) {
        held = b * groups + group;
        for (int64_t ci = 0; ci < cin_g; ++ci) {
          const float a_c = c ? c[b * cin_g * groups + group * cin_g + ci] : 1.f;
          for (int64_t t = 0; t < taps; ++t)
            scales[ci * taps + t] = a_c * (s ? s[b * taps + t] : 1.f);
        }
      }
      const float a_f = f ? f[b * filters + o] : 1.f;
      float* to = dst + item * row;
      const float first = m ? m[b * kernels] : 1.f;
      const float* w0 = w + o * row;
      for (int64_t j = 0; j < row; ++j) to[j] = first * w0[j];
      for (int64_t i = 1; m && i < kernels; ++i) {
        const float a_w = m[b * kernels + i];
        const float* wi = w + (i * filters + o) * row;
        for (int64_t j = 0; j < row; ++j) to[j] += a_w * wi[j];
      }
      for (int64_t j = 0; j < row; ++j) to[j] *= a_f * scales[j];
    }
  });
}
"""


def scaled_kernel(
    weight: Tensor,
    mix: Tensor | None,
    spatial: Tensor | None,
    channel: Tensor | None,
    filt: Tensor | None,
    groups: int,
) -> Tensor | None:
    """The (B, C_out, C_in / g, k, k) kernels of ``weight`` (n, C_out, C_in / g, k, k) mixed
    by ``mix`` (B, n) and scaled by ``spatial`` (B, k k), ``channel`` (B, C_in) and ``filt``
    (B, C_out), each None where it is left out (at least one given), written where
    :func:`dynbench.ops.buffers.kernel_buffer` says; None where the loop does not apply
    (:func:`dynbench.ops.compiled.loops_for`) or the build failed."""
    attentions = (mix, spatial, channel, filt)
    module = compiled.loops_for(weight, *attentions)
    if module is None:
        return None
    n, cout, cin_g, k, _ = weight.shape
    batch = next(a.shape[0] for a in attentions if a is not None)
    shape = (batch, cout * cin_g * k * k)
    out = kernel_buffer("mix", shape, weight)
    if out is None:
        out = weight.new_empty(shape)
    taken = map(compiled.operand, attentions)
    module.scaled_kernel(weight.view(n, cout, cin_g, k * k), *taken, groups, out)
    return out.view(-1, cout, cin_g, k, k)
