"""DCD's eval-time fold: both batch norms of the latent path folded into constants,
kept between calls, and the two routes that use them (see :mod:`dynbench.ops.dcd_route`).

In eval mode the BNs are affine maps, so the residual P (BN2(Phi BN1(Q^T x)) +
BN1(Q^T x)) becomes P (I + diag(s2) Phi) (diag(s1) Q^T x + t1) + P t2, and the
dynamic branch's two heads can be packed into one product.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.base import phase


def fold_bn(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """(scale, shift) such that bn(v) == scale * v + shift in eval mode."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, torch.addcmul(bn.bias, bn.running_mean, scale, value=-1)


class Folded(NamedTuple):
    """A layer's eval-mode constants: both BNs folded (BN1 = (s1, t1), BN2 = (s2, t2))
    and the branch's two heads packed for a fast matrix-vector product.

    The column and 4-d views are kept so that a call does not dispatch them again.
    """

    p_s2: Tensor  # P diag(s2), (C_out, L)
    p_t2: Tensor  # P t2, (C_out,)
    squeeze: Tensor  # diag(s1) Q^T, (L, C_in)
    t1: Tensor  # (L,)
    s2: Tensor  # (L,)
    p_t2_col: Tensor  # (C_out, 1)
    t1_col: Tensor  # (L, 1)
    s2_col: Tensor  # (L, 1)
    squeeze_4d: Tensor  # (L, C_in, 1, 1)
    # [fc_phi; fc_scale]^T, (squeeze, L^2 + C_out), contiguous, or None while autograd
    # records. The heads map a short vector to a long one: as stored, (out, in) with
    # in = squeeze small, a matrix-vector product streams them with short inner loops;
    # the transposed layout gives BLAS long contiguous rows to read.
    heads: Tensor | None


class EvalFold:
    """The folded constants of a DCD layer (conv or classifier) and their cache."""

    _constants_cache: tuple | None = None  # (key, aliases, Folded), see _constants

    def _foldable(self) -> bool:
        """Whether both BNs are affine maps (eval mode with running statistics)."""
        if self.training:
            return False
        for name in ("bn_q", "bn_phi"):
            bn = self._modules[name]
            if bn.training or bn._buffers.get("running_var") is None:
                return False
        return True

    def train(self, mode: bool = True):
        self._constants_cache = None
        return super().train(mode)

    def _constants(self, reuse: bool) -> Folded:
        """The layer's eval-mode constants (see :class:`Folded`).

        They depend only on P, Q, the two heads and the BNs' parameters and running
        statistics, so with ``reuse`` (no graph recorded) they are kept between calls
        and recomputed when one of those tensors is replaced or changed in place: its
        storage or its autograd version counter changes. BN updates of the running
        statistics do not bump their counters but do bump ``num_batches_tracked``'s,
        and :meth:`train` drops the constants. Changes made through ``.data`` bypass
        version counters: call ``.eval()`` again after those.
        """
        if not reuse:
            return self._fold_constants(heads=False)
        bn_q, bn_phi = self._modules["bn_q"], self._modules["bn_phi"]
        params = self._parameters
        sources = (
            params["p"],
            params["q"],
            params["fc_phi"],
            params.get("fc_scale"),  # None without Lambda
            *bn_q._parameters.values(),
            *bn_q._buffers.values(),
            *bn_phi._parameters.values(),
            *bn_phi._buffers.values(),
        )
        key = (bn_q.eps, bn_phi.eps) + tuple(
            (t._version, t.data_ptr()) for t in sources if t is not None
        )
        cached = self._constants_cache
        if cached is not None and cached[0] == key:
            return cached[2]
        # Normal tensors even under inference mode, so that later calls outside it can
        # use them, and no graph: they are constants of the eval-mode layer.
        with torch.inference_mode(False), torch.no_grad():
            folded = self._fold_constants(heads=True)
            # The aliases keep the sources' storage alive, so that no new tensor can
            # take over an address in the key.
            aliases = tuple(t.detach() for t in sources if t is not None)
        self._constants_cache = (key, aliases, folded)
        return folded

    def _heads(self) -> list[Tensor]:
        """The branch's output heads present, Phi's first (as ``_branch`` splits them)."""
        return [h for h in (self.fc_phi, self.fc_scale) if h is not None]

    def _fold_constants(self, heads: bool) -> Folded:
        s1, t1 = fold_bn(self.bn_q)
        s2, t2 = fold_bn(self.bn_phi)
        p = self.dense_p()
        p_t2 = torch.mv(p, t2)
        squeeze = s1[:, None] * self.dense_q()
        return Folded(
            p * s2,
            p_t2,
            squeeze,
            t1,
            s2,
            p_t2[:, None],
            t1[:, None],
            s2[:, None],
            squeeze[:, :, None, None],
            torch.cat(self._heads()).t().contiguous() if heads else None,
        )

    def _expand(self, phi: Tensor, folded: Folded) -> tuple[Tensor, Tensor]:
        """The per-sample ``expand`` and ``bias`` of the residual ``expand @ squeeze @ x + bias``.

        With the BNs folded, the residual P (BN2(Phi BN1(Q^T x)) + BN1(Q^T x)) is
        P (I + diag(s2) Phi) (diag(s1) Q^T x + t1) + P t2, so

            expand = P + (P diag(s2)) Phi       (C_out, L) at batch 1, else (B, C_out, L)
            squeeze = diag(s1) Q^T              (L, C_in), shared by the batch
            bias = expand t1 + P t2             (C_out,) at batch 1, else (B, C_out)
        """
        p = self.dense_p()
        batch, latent = phi.shape[0], self.latent_dim
        if batch == 1:
            expand = torch.addmm(p, folded.p_s2, phi.view(latent, latent))
            return expand, torch.addmv(folded.p_t2, expand, folded.t1)
        expand = torch.baddbmm(p, folded.p_s2.expand(batch, -1, -1), phi)
        bias = torch.baddbmm(folded.p_t2_col, expand, folded.t1_col.expand(batch, -1, -1))
        return expand, bias.view(batch, -1)


class ConvEvalFold(EvalFold):
    """The two eval-mode routes of a DCD conv: W(x) per sample, or the residual on maps."""

    def _kernel(
        self, phi: Tensor, scale: Tensor, folded: Folded, reuse: bool
    ) -> tuple[Tensor, Tensor]:
        """W(x) = Lambda W0 + centre(expand @ squeeze) and its bias: (C_out, C_in, k, k)
        and (C_out,) at batch 1, with a leading batch dimension otherwise."""
        expand, bias = self._expand(phi, folded)
        batch = phi.shape[0]
        cout, cin, k = self.out_channels, self.in_channels, self.kernel_size
        weight = self._parameters["weight"]
        if batch == 1:
            shape, factor = (cout, cin, k, k), scale.view(cout, 1, 1, 1)
        else:
            shape, factor = (batch, cout, cin, k, k), scale.view(batch, cout, 1, 1, 1)
        if reuse:
            residual = self.workspace("residual", expand.shape[:-1] + (cin,), scale)
            torch.matmul(expand, folded.squeeze, out=residual)
            if k == 1:
                kernel = residual.view(shape).addcmul_(weight, factor)
            else:
                kernel = torch.mul(weight, factor, out=self.workspace("kernel", shape, scale))
                kernel.view(residual.shape + (k * k,)).select(-1, k * k // 2).add_(residual)
        else:
            kernel = weight * factor
            kernel[..., k // 2, k // 2] += torch.matmul(expand, folded.squeeze)
        if self.bias is not None:
            bias = torch.addcmul(bias, scale.view(bias.shape), self.bias)
        return kernel, bias

    def _per_sample_conv(self, x: Tensor, kernel: Tensor, bias: Tensor) -> Tensor:
        with phase("conv"):
            if kernel.dim() == 4:
                return F.conv2d(x, kernel, bias, self.stride, self.padding)
            batch, cin, height, width = x.shape
            k = self.kernel_size
            out = F.conv2d(
                x.reshape(1, batch * cin, height, width),
                kernel.view(batch * self.out_channels, cin, k, k),
                bias.flatten(),
                self.stride,
                self.padding,
                groups=batch,
            )
            return out.view(batch, self.out_channels, out.shape[2], out.shape[3])

    def _low_rank(
        self, x: Tensor, phi: Tensor, scale: Tensor, folded: Folded, reuse: bool
    ) -> Tensor:
        """Lambda W0 x + P w + P t2 on the feature maps, the BNs folded, with
        w = z + diag(s2) Phi z and z = diag(s1) Q^T x + t1 at the output resolution."""
        with phase("conv"):
            out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        with phase("aggregation"):
            batch, cout, height, width = out.shape
            p, latent_dim = self.dense_p(), self.latent_dim
            if batch == 1:
                if self.stride == 1:
                    latent = torch.addmm(
                        folded.t1_col, folded.squeeze, x.reshape(self.in_channels, -1)
                    )
                else:
                    latent = F.conv2d(x, folded.squeeze_4d, folded.t1, self.stride)
                    latent = latent.view(latent_dim, -1)
                mixed = torch.mm(phi.view(latent_dim, latent_dim), latent)
                fused = torch.addcmul(latent, mixed, folded.s2_col)
                shape = (cout, height * width)
                residual = self.workspace("residual_maps", shape, out) if reuse else None
                residual = torch.addmm(folded.p_t2_col, p, fused, out=residual)
            else:
                latent = F.conv2d(x, folded.squeeze_4d, folded.t1, self.stride).flatten(2)
                fused = torch.addcmul(latent, torch.bmm(phi, latent), folded.s2_col)
                shape = (batch, cout, height * width)
                residual = self.workspace("residual_maps", shape, out) if reuse else None
                expand = p.expand(batch, -1, -1)
                residual = torch.baddbmm(folded.p_t2_col, expand, fused, out=residual)
            factor = scale.view(batch, cout, 1, 1)
            if reuse:
                return torch.addcmul(residual.view_as(out), out, factor, out=out)
            return torch.addcmul(residual.view_as(out), out, factor)
