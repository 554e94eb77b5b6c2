"""DCD of a k x k convolution with joint fusion of channels and kernel elements (the
DCD paper's Eq. 9, Sec. 4.3), the variant its Sec. 5.2 sets beside "channel fusion alone".

The kernel of sample x is the C_out x C_in x k^2 tensor

    W(x) = Lambda(x) W0 + Phi(x) x_1 Q x_2 P x_3 R,

Phi(x) an L x L x L_k core fused per sample, Q (C_in x L) and P (C_out x L) the
channel bases, R (k^2 x L_k) a basis of kernel elements. The paper's defaults are
L_k = floor(k^2 / 2) and L = floor(C' / 2^floor(log2 sqrt(C'))) with C' = C_in / L_k.
The released code has no such layer, so the rest follows the released DCD convs
(:mod:`dynbench.ops.dcd`): the same branch (pooling, FC, gate, heads for Phi and
Lambda) and Lambda on the output channels; the latent path has no batch norms, as
Eq. 9 has none. Both paths form each sample's kernel: the fast one with one
contraction for the batch and one grouped conv, the naive one mode product by mode
product, one sample at a time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.analytic_madds import conv_madds
from dynbench.ops.base import DynamicOp
from dynbench.ops.dcd import adaptive_pool_flat
from dynbench.ops.dcd_base import default_squeeze, hard_sigmoid, paper_latent_dim
from dynbench.ops.phases import phase


class DCDJointConv2d(DynamicOp):
    """Drop-in for ``nn.Conv2d`` (groups = 1, no bias) with Eq. 9's dynamic residual."""

    operator = "dcd"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        latent_dim: int | None = None,
        kernel_latent: int | None = None,
        reduction: int = 16,
        pool_size: int = 1,
    ) -> None:
        super().__init__()
        if kernel_size < 2:
            raise ValueError("joint fusion needs kernel elements to fuse (k > 1)")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.groups = 1
        self.pool_size = pool_size
        self.kernel_latent = kernel_latent or kernel_size**2 // 2
        self.latent_dim = latent_dim or paper_latent_dim(in_channels // self.kernel_latent)
        latent, elements = self.latent_dim, self.kernel_latent
        pooled = in_channels * pool_size**2
        self.squeeze = default_squeeze(pooled, latent * latent * elements, reduction)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.q = nn.Parameter(torch.empty(in_channels, latent))
        self.p = nn.Parameter(torch.empty(out_channels, latent))
        self.r = nn.Parameter(torch.empty(kernel_size**2, elements))
        self.fc = nn.Parameter(torch.empty(self.squeeze, pooled))
        self.gate = nn.Parameter(torch.empty(self.squeeze, self.squeeze))
        self.fc_phi = nn.Parameter(torch.empty(latent * latent * elements, self.squeeze))
        self.fc_scale = nn.Parameter(torch.empty(out_channels, self.squeeze))
        for fc in (self.fc, self.gate, self.fc_phi, self.fc_scale):
            nn.init.kaiming_uniform_(fc, a=math.sqrt(5))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        # Bases with std 1 / sqrt(rows): Eq. 9 has no batch norm to rein in the residual,
        # and He gains on three stacked bases overflow a deep network at init.
        for basis in (self.q, self.p, self.r):
            nn.init.normal_(basis, std=basis.shape[0] ** -0.5)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, latent_dim={self.latent_dim}, "
            f"kernel_latent={self.kernel_latent}, squeeze={self.squeeze}, impl={self.impl!r}"
        )

    def _branch(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Phi (B, L, L, L_k), indexed (input latent, output latent, kernel latent), and
        Lambda (B, C_out)."""
        latent = self.latent_dim
        with phase("attention"):
            y = F.linear(adaptive_pool_flat(x, self.pool_size), self.fc)
            y = y * hard_sigmoid(F.linear(y, self.gate))
            phi = F.linear(y, self.fc_phi).view(-1, latent, latent, self.kernel_latent)
            return phi, hard_sigmoid(F.linear(y, self.fc_scale))

    def forward(self, x: Tensor) -> Tensor:
        phi, scale = self._branch(x)
        cout, cin, k = self.out_channels, self.in_channels, self.kernel_size
        if self.impl == "naive":
            outputs = []
            for i in range(x.shape[0]):
                with phase("aggregation"):
                    core = torch.tensordot(phi[i], self.r, dims=([2], [1]))  # (L, L, k^2)
                    core = torch.tensordot(self.q, core, dims=([1], [0]))  # (C_in, L, k^2)
                    core = torch.tensordot(self.p, core, dims=([1], [1]))  # (C_out, C_in, k^2)
                    kernel = scale[i].view(cout, 1, 1, 1) * self.weight + core.view_as(self.weight)
                with phase("conv"):
                    outputs.append(F.conv2d(x[i : i + 1], kernel, None, self.stride, self.padding))
            return torch.cat(outputs)
        batch = x.shape[0]
        with phase("aggregation"):
            residual = torch.einsum("nabc,ia,ob,ec->noie", phi, self.q, self.p, self.r)
            kernel = residual.reshape(batch, cout, cin, k, k)
            kernel = kernel + scale.view(batch, cout, 1, 1, 1) * self.weight
        with phase("conv"):
            out = F.conv2d(
                x.reshape(1, batch * cin, *x.shape[2:]),
                kernel.reshape(batch * cout, cin, k, k),
                None,
                self.stride,
                self.padding,
                groups=batch,
            )
            return out.view(batch, cout, *out.shape[2:])

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """conv: the static k x k conv; attention: the branch's FC layers; aggregation:
        forming each sample's kernel (the three mode products, then Lambda W0 added)."""
        batch = x_shape[0]
        latent, elements, k2 = self.latent_dim, self.kernel_latent, self.kernel_size**2
        cin, cout = self.in_channels, self.out_channels
        products = latent * latent * elements * k2 + cin * latent * latent * k2
        products += cout * cin * latent * k2 + cout * cin * k2
        heads = (self.fc, self.gate, self.fc_phi, self.fc_scale)
        return {
            "conv": conv_madds(out_shape, cin, self.kernel_size),
            "attention": batch * sum(h.numel() for h in heads),
            "aggregation": batch * products,
            "feature_scale": 0,
        }
