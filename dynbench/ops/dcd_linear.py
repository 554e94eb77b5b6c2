"""DCD on the classifier (the released ``DYCls``): Eq. 6 at 1 x 1 resolution (the layer
and its branch: :mod:`dynbench.ops.dcd_base`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.analytic_madds import fc_madds
from dynbench.ops.dcd_base import FOLD_FEATURE_MAPS, UNFOLDED, DCDBase
from dynbench.ops.phases import phase


class DCDLinear(DCDBase):
    """DCD applied to the classifier (the released ``DYCls``): Eq. 6 at 1 x 1 resolution.

    y = Lambda(x) (W0 x + b) + P (BN2(Phi(x) BN1(Q^T x)) + BN1(Q^T x)); the branch
    reads the features directly (no pooling). Takes (batch, in_features) inputs.
    """

    is_classifier = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        latent_dim: int | None = None,
        squeeze: int | None = None,
        reduction: int = 16,
    ) -> None:
        super().__init__(in_features, out_features, latent_dim, squeeze, reduction, 1)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, latent_dim={self.latent_dim}, "
            f"squeeze={self.squeeze}, impl={self.impl!r}"
        )

    def forward(self, x: Tensor) -> Tensor:
        return self._fast(x) if self.impl == "fast" else self._naive(x)

    def _fast(self, x: Tensor) -> Tensor:
        if not self.foldable():
            self.route = UNFOLDED
            phi, scale = self._branch(x)
            with phase("conv"):
                out = F.linear(x, self.weight, self.bias)
            with phase("aggregation"):
                fused = self._fuse(phi, F.linear(x, self.q)[:, :, None])[:, :, 0]
                return torch.addcmul(F.linear(fused, self.p), out, scale)
        # The BNs folded: P (z + diag(s2) Phi z) + P t2 with z = diag(s1) Q^T x + t1,
        # on the features directly (forming W(x) would cost C_out C_in L per sample).
        self.route = FOLD_FEATURE_MAPS
        with phase("aggregation"):
            folded = self.folded(not self.records_graph(x))
        phi, scale = self._branch(x, folded.heads)
        with phase("conv"):
            out = F.linear(x, self.weight, self.bias)
        with phase("aggregation"):
            latent = F.linear(x, folded.squeeze, folded.t1)
            mixed = torch.bmm(phi, latent.view(*latent.shape, 1)).view(latent.shape)
            fused = torch.addcmul(latent, mixed, folded.s2)
            return torch.addcmul(F.linear(fused, self.p, folded.p_t2), out, scale)

    def _naive(self, x: Tensor) -> Tensor:
        """Per sample: build W(x) = Lambda W0 + P Phi Q^T and b(x), then one matvec."""
        outputs = []
        for sample in x.split(1):
            phi, scale = self._branch(sample)
            with phase("aggregation"):
                residual, bias = self._residual_matrix(phi[0])
                weight = scale[0, :, None] * self.weight + residual
                if self.bias is not None:
                    bias = bias + scale[0] * self.bias
            with phase("conv"):
                outputs.append(F.linear(sample, weight, bias))
        return torch.cat(outputs)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """As :meth:`DCDConv2d.analytic_madds`, at one position per sample."""
        batch = math.prod(x_shape[:-1])
        return {
            "conv": fc_madds(batch, self.in_features, self.out_features),
            "attention": self._branch_madds(batch),
            "aggregation": self._residual_madds(batch, self.in_features, self.out_features),
            "feature_scale": self._scale_madds(batch),
        }

    def kernel_route_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """As :meth:`DCDConv2d.kernel_route_madds`, for the classifier's weight matrix."""
        batch = math.prod(x_shape[:-1])
        return self._kernel_route(batch, self.in_features, self.out_features, 1)
