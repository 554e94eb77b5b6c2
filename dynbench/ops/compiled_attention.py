"""ODConv's folded attention branch as one compiled loop, built on first use, with a fallback.

At batch 1 the branch is a handful of tiny ops (pool, two linears, ReLU, the gates' sigmoid),
and in a model each pays its dispatch cold: on a MobileNetV2 their time was most of ODConv's
overhead (``reports/floor/odconv-overhead.md``'s stages). One C++ loop over the input does all of
them (``reports/floor/odconv-before-after.md``: what it saved). It is built with
``torch.utils.cpp_extension.load_inline`` the first time a CPU fp32 forward asks for it
(tens of seconds, then cached by torch in its extensions folder) and needs a C++ compiler and
ninja; where the build fails, or ``DYNBENCH_COMPILED=0`` is set, :func:`branch_logits`
answers None and the operator runs PyTorch's ops, as it does under a MAdds counter, a
``torch.jit`` trace or ``torch.compile`` (which must see the ops).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import types
import warnings
from pathlib import Path

import torch
from torch import Tensor

# DYNBENCH_COMPILED=0 keeps the compiled branch off (PyTorch's ops run)
SWITCH = "DYNBENCH_COMPILED"

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

_BUILT: dict[str, types.ModuleType | None] = {}  # "module": the build, or None if it failed


def cpu_tag() -> str:
    """A short name for this CPU's model and instruction sets. The build is tuned to the CPU
    that compiles it (``-march=native``) and torch's cache is keyed by the source and flags,
    not the CPU: the tag in the build's name keeps a cache shared between machines (a home
    folder) from handing one CPU another's build."""
    described = platform.machine() + platform.processor()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        described += "".join(line for line in lines if line.startswith(("model name", "flags")))
    return hashlib.sha256(described.encode()).hexdigest()[:10]


def built() -> types.ModuleType | None:
    """The compiled module, built on the first call; None if the build fails (said once)."""
    if "module" not in _BUILT:
        try:
            from torch.utils.cpp_extension import load_inline  # imports setuptools

            _BUILT["module"] = load_inline(
                f"dynbench_odconv_attention_{cpu_tag()}",
                cpp_sources=[SOURCE],
                functions=["branch_logits"],
                # the reductions vectorise only when their order may change; built per machine
                extra_cflags=["-O3", "-march=native", "-ffast-math"],
            )
        except Exception as error:  # no setuptools, compiler or ninja, a failed build
            _BUILT["module"] = None
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            warnings.warn(
                f"dynbench: the compiled ODConv attention did not build ({reason}); "
                "PyTorch's ops run instead",
                stacklevel=2,
            )
    return _BUILT["module"]


def applies(x: Tensor) -> bool:
    """Whether :func:`branch_logits` may run on ``x``: a contiguous CPU fp32 map, the switch
    not off, and no one watching the ops (a counter's dispatch mode, a trace, a compile)."""
    return (
        x.is_cpu
        and x.dtype == torch.float32
        and x.is_contiguous()
        and os.environ.get(SWITCH, "1") != "0"
        and not torch.jit.is_tracing()
        and not torch._C._len_torch_dispatch_stack()
        and not torch.compiler.is_compiling()
    )


def branch_logits(
    x: Tensor, squeeze_w: Tensor, squeeze_b: Tensor, heads_w: Tensor, heads_b: Tensor, gates: int
) -> Tensor | None:
    """(B, rows) logits of the folded branch, the first ``gates`` columns through a sigmoid;
    None where it does not apply (:func:`applies`) or the build failed."""
    if not applies(x):
        return None
    module = built()
    if module is None:
        return None
    return module.branch_logits(x, squeeze_w, squeeze_b, heads_w, heads_b, gates)
