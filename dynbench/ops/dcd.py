"""DCD's convolution (Li et al., ICLR 2021; the layer and its branch:
:mod:`dynbench.ops.dcd_base`), drop-in for ``nn.Conv2d``.

In eval mode the fast path folds the branch's BNs (:mod:`dynbench.ops.dcd_fold`) and
then takes, per layer and input shape, the cheaper of two routes
(:meth:`DCDConv2d.kernel_is_cheaper`):

* W(x) per sample, the whole residual in the centre tap, and one conv (a grouped
  conv over the batch beyond batch 1): cheap where the kernel is small next to the
  feature maps (ResNet's first two stages, most MobileNetV2 layers);
* the static conv plus the low-rank residual on the feature maps, the BNs folded
  into its constants: cheap where the kernel is large (ResNet's last two stages).

Both build their per-call tensors into reused buffers when autograd records nothing,
and keep the folded constants between calls (:class:`dynbench.ops.dcd_fold.EvalFold`).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.analytic_madds import conv_madds
from dynbench.ops.dcd_base import (
    FOLD_FEATURE_MAPS,
    FOLD_KERNEL,
    LAMBDA_ONLY,
    UNFOLDED,
    DCDBase,
    DCDSwitches,
)
from dynbench.ops.dcd_fold import low_rank, per_sample_conv, sample_kernels
from dynbench.ops.dcd_route import kernel_is_cheaper
from dynbench.ops.phases import phase

LINEAR_POOL_MAX = 32 * 32  # maps up to this many pixels pool as one matmul


@functools.lru_cache(maxsize=64)
def _pooling_matrix(
    height: int, width: int, size: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """(size^2, height * width): adaptive average pooling to size x size as a matrix.

    Built from Python floats, not tensor ops: a first call then looks like any other
    to whatever watches the ops (the MAdds counters, a trace, the profiler).
    """

    def windows(n: int) -> list[list[float]]:
        rows = [[0.0] * n for _ in range(size)]
        for i in range(size):
            start, end = (i * n) // size, -(-(i + 1) * n // size)
            rows[i][start:end] = [1.0 / (end - start)] * (end - start)
        return rows

    over_h, over_w = windows(height), windows(width)
    full = [[a * b for a in over_h[i] for b in over_w[j]] for i in range(size) for j in range(size)]
    with torch.inference_mode(False):
        return torch.tensor(full, dtype=torch.float64).to(dtype=dtype, device=device)


def adaptive_pool_flat(x: Tensor, size: int) -> Tensor:
    """``F.adaptive_avg_pool2d(x, size).flatten(1)``, by whichever route is cheapest.

    ATen's adaptive pooling to 2 x 2 walks each window separately, far slower than a
    reduction over the same map. Here: a global mean for
    size 1; two reductions over contiguous rows, then columns, for large maps that
    the windows tile exactly; a (C*..., H*W) x (H*W, size^2) matmul otherwise.
    """
    batch, channels, height, width = x.shape
    if size == 1:
        return x.mean((2, 3))
    if height % size == 0 and width % size == 0 and height * width > LINEAR_POOL_MAX:
        rows = x.reshape(batch, channels, size, height // size, width).mean(3)
        return rows.view(batch, channels, size, size, width // size).mean(4).flatten(1)
    matrix = _pooling_matrix(height, width, size, x.dtype, x.device)
    return F.linear(x.reshape(batch * channels, height * width), matrix).view(batch, -1)


class DCDConv2d(DCDBase):
    """A DCD convolution, drop-in for ``nn.Conv2d`` (groups = 1, odd kernel, 'same' padding).

    1x1: the full Eq. 6. k x k: a static k x k conv scaled by Lambda plus the 1x1
    dynamic residual P Phi Q^T, which is Eq. 6 with the residual on the centre tap
    ("channel fusion alone"). The residual's Q^T uses the conv's stride so that it
    samples exactly the pixels the centre tap does.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = False,
        latent_dim: int | None = None,
        squeeze: int | None = None,
        reduction: int = 16,
        pool_size: int = 1,
        switches: DCDSwitches | None = None,
    ) -> None:
        if kernel_size % 2 == 0 or padding != kernel_size // 2:
            raise ValueError(
                "DCDConv2d needs an odd kernel with padding kernel_size // 2, so that the "
                f"1x1 residual lines up with the centre tap (got k={kernel_size}, "
                f"padding={padding})"
            )
        super().__init__(
            in_channels, out_channels, latent_dim, squeeze, reduction, pool_size, switches
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.groups = 1  # as nn.Conv2d, which this replaces
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        # Eval-mode route: None picks by shape (kernel_is_cheaper); True forms each
        # sample's kernel, False applies the residual to the feature maps.
        self.fold: bool | None = None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, latent_dim={self.latent_dim}, squeeze={self.squeeze}, "
            f"pool_size={self.pool_size}, {self.switches}, impl={self.impl!r}"
        )

    def forward(self, x: Tensor) -> Tensor:
        return self._fast(x) if self.impl == "fast" else self._naive(x)

    def _pooled(self, x: Tensor) -> Tensor:
        return adaptive_pool_flat(x, self.pool_size)

    def _fast(self, x: Tensor) -> Tensor:
        """Eval mode: the BNs folded, either into each sample's kernel (one conv) or into
        a low-rank residual on the feature maps, whichever the cost model prefers;
        training mode: the released code's wiring (:meth:`_feature_maps`). Lambda alone
        scales the static conv's output."""
        if self.p is None:
            self.route = LAMBDA_ONLY
            _, scale = self._branch(self._pooled(x))
            with phase("conv"):
                out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
            with phase("aggregation"):
                return out * scale[:, :, None, None]
        if not self.foldable():
            self.route = UNFOLDED
            phi, scale = self._branch(self._pooled(x))
            return self._feature_maps(x, phi, scale)
        reuse = not self.records_graph(x)
        workspace = self.workspace if reuse else None
        with phase("aggregation"):
            folded = self.folded(reuse)
        phi, scale = self._branch(self._pooled(x), folded.heads)
        fold = self.fold
        if fold is None:
            fold = self.kernel_is_cheaper(x.shape[0], x.shape[2], x.shape[3])
        if not fold:
            self.route = FOLD_FEATURE_MAPS
            conv = (self.weight, self.bias, self.stride, self.padding)
            p_blocks = (self._parameters["p"], self.blocks)
            return low_rank(x, conv, p_blocks, phi, scale, folded, workspace)
        self.route = FOLD_KERNEL
        with phase("aggregation"):
            kernel, bias = sample_kernels(
                self._parameters["weight"], self.bias, self.dense_p(), phi, scale, folded, workspace
            )
        return per_sample_conv(x, kernel, bias, self.stride, self.padding)

    def kernel_is_cheaper(self, batch: int, height: int, width: int) -> bool:
        """See :func:`dynbench.ops.dcd_route.kernel_is_cheaper`, at this layer's shapes."""
        return kernel_is_cheaper(
            self.out_channels,
            self.in_channels,
            self.kernel_size,
            self.latent_dim,
            self.stride,
            batch,
            height,
            width,
        )

    def _feature_maps(self, x: Tensor, phi: Tensor, scale: Tensor) -> Tensor:
        """The released code's wiring: Q^T, Phi and P applied to feature maps, batched,
        with the BNs as modules (batch statistics in training mode)."""
        with phase("conv"):
            out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        with phase("aggregation"):
            latent = F.conv2d(x, self.dense_q()[:, :, None, None], stride=self.stride)
            batch, _, height, width = latent.shape
            fused = self._fuse(phi, latent.flatten(2)).view(batch, -1, height, width)
            residual = F.conv2d(fused, self.dense_p()[:, :, None, None])
            return torch.addcmul(residual, out, scale[:, :, None, None])

    def _naive(self, x: Tensor) -> Tensor:
        """Per sample: build W(x) = Lambda W0 + centre(P Phi Q^T) and its bias, convolve."""
        centre = self.kernel_size // 2
        outputs = []
        for sample in x.split(1):
            phi, scale = self._branch(self._pooled(sample))
            with phase("aggregation"):
                weight = scale[0, :, None, None, None] * self.weight
                bias = None if self.bias is None else scale[0] * self.bias
                if phi is not None:
                    residual, residual_bias = self._residual_matrix(phi[0])
                    weight[:, :, centre, centre] += residual
                    bias = residual_bias if bias is None else bias + residual_bias
            with phase("conv"):
                outputs.append(F.conv2d(sample, weight, bias, self.stride, self.padding))
        return torch.cat(outputs)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """MAdds of the released wiring at these shapes.

        aggregation is the dynamic residual applied to the feature maps (Q^T, Phi, P
        at the output resolution) and feature_scale is Lambda times the static conv's
        output, as in training mode. In eval mode the fast path may instead form W(x)
        per sample (see :meth:`kernel_is_cheaper`); the conv and attention parts,
        which the papers count, are the same either way.
        """
        batch, out_channels, height, width = out_shape
        positions = batch * height * width
        return {
            "conv": conv_madds(out_shape, self.in_channels, self.kernel_size),
            "attention": self._branch_madds(batch),
            "aggregation": self._residual_madds(positions, self.in_channels, out_channels),
            "feature_scale": self._scale_madds(positions),
        }

    def kernel_route_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """aggregation and feature_scale with the products on each sample's kernel."""
        taps = self.kernel_size**2
        return self._kernel_route(out_shape[0], self.in_channels, out_shape[1], taps)
