"""DCD's eval-time fold: both batch norms of the latent path folded into constants,
kept between calls, and the two conv routes that use them (the rule choosing between
them: :mod:`dynbench.ops.dcd_route`).

In eval mode the BNs are affine maps, so the residual P (BN2(Phi BN1(Q^T x)) +
BN1(Q^T x)) becomes P (I + diag(s2) Phi) (diag(s1) Q^T x + t1) + P t2, and the
dynamic branch's two heads can be packed into one product.

The fold reads only what a DCD layer hands it, its public weights (:class:`LatentWeights`),
and the routes are functions of the tensors and the conv geometry they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.phases import phase

# a layer's own buffer for a slot (DynamicOp.workspace), or None: fresh tensors
Workspace = Callable[[str, tuple[int, ...], Tensor], Tensor] | None


def fold_bn(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """(scale, shift) such that bn(v) == scale * v + shift in eval mode."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, torch.addcmul(bn.bias, bn.running_mean, scale, value=-1)


def block_diagonal(matrix: Tensor, blocks: int) -> Tensor:
    """``matrix`` as stored (B blocks stacked on its rows) as the dense block-diagonal
    matrix; itself for one block."""
    return matrix if blocks == 1 else torch.block_diag(*matrix.chunk(blocks))


def affine(bn: nn.BatchNorm1d) -> bool:
    """Whether ``bn`` is an affine map: eval mode with running statistics."""
    return not bn.training and bn._buffers.get("running_var") is not None


class LatentWeights(NamedTuple):
    """The weights of a DCD layer the fold reads: P and Q^T as stored (B diagonal blocks
    stacked), the branch's two heads (Phi's; Lambda's or None) and the two BNs."""

    p: Tensor  # (C_out, L / B)
    q: Tensor  # (L, C_in / B)
    fc_phi: Tensor  # (B L^2 / B^2, squeeze)
    fc_scale: Tensor | None  # (C_out, squeeze)
    bn_q: nn.BatchNorm1d
    bn_phi: nn.BatchNorm1d
    blocks: int

    def sources(self) -> tuple[Tensor, ...]:
        """Every tensor the folded constants depend on."""
        bn_q, bn_phi = self.bn_q, self.bn_phi
        tensors = (
            self.p,
            self.q,
            self.fc_phi,
            self.fc_scale,  # None without Lambda
            *bn_q._parameters.values(),
            *bn_q._buffers.values(),
            *bn_phi._parameters.values(),
            *bn_phi._buffers.values(),
        )
        return tuple(t for t in tensors if t is not None)


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


def fold(weights: LatentWeights, heads: bool) -> Folded:
    """The constants of :class:`Folded` from ``weights``; the packed heads with ``heads``."""
    s1, t1 = fold_bn(weights.bn_q)
    s2, t2 = fold_bn(weights.bn_phi)
    p = block_diagonal(weights.p, weights.blocks)
    p_t2 = torch.mv(p, t2)
    squeeze = s1[:, None] * block_diagonal(weights.q, weights.blocks)
    packed = None
    if heads:  # the heads present, Phi's first (as the branch splits them)
        present = [h for h in (weights.fc_phi, weights.fc_scale) if h is not None]
        packed = torch.cat(present).t().contiguous()
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
        packed,
    )


class EvalFold:
    """A DCD layer's folded constants, kept between calls: a plain object the layer owns
    and hands its :class:`LatentWeights` on each call."""

    def __init__(self) -> None:
        self._cached: tuple | None = None  # (key, aliases, Folded), see constants

    def clear(self) -> None:
        """Forget the constants (the layer switched mode)."""
        self._cached = None

    def constants(self, weights: LatentWeights, reuse: bool) -> Folded:
        """The eval-mode constants of ``weights`` (see :class:`Folded`).

        They depend only on P, Q, the two heads and the BNs' parameters and running
        statistics, so with ``reuse`` (no graph recorded) they are kept between calls
        and recomputed when one of those tensors is replaced or changed in place: its
        storage or its autograd version counter changes. BN updates of the running
        statistics do not bump their counters but do bump ``num_batches_tracked``'s,
        and the layer's ``train()`` clears the constants. Changes made through ``.data``
        bypass version counters: call ``.eval()`` again after those.
        """
        if not reuse:
            return fold(weights, heads=False)
        sources = weights.sources()
        key = (weights.bn_q.eps, weights.bn_phi.eps) + tuple(
            (t._version, t.data_ptr()) for t in sources
        )
        cached = self._cached
        if cached is not None and cached[0] == key:
            return cached[2]
        # Normal tensors even under inference mode, so that later calls outside it can
        # use them, and no graph: they are constants of the eval-mode layer.
        with torch.inference_mode(False), torch.no_grad():
            folded = fold(weights, heads=True)
            # The aliases keep the sources' storage alive, so that no new tensor can
            # take over an address in the key.
            aliases = tuple(t.detach() for t in sources)
        self._cached = (key, aliases, folded)
        return folded


def expand_and_bias(p: Tensor, phi: Tensor, folded: Folded) -> tuple[Tensor, Tensor]:
    """The per-sample ``expand`` and ``bias`` of the residual ``expand @ squeeze @ x + bias``,
    for P (dense, (C_out, L)) and the batch's Phi (B, L, L).

    With the BNs folded, the residual P (BN2(Phi BN1(Q^T x)) + BN1(Q^T x)) is
    P (I + diag(s2) Phi) (diag(s1) Q^T x + t1) + P t2, so

        expand = P + (P diag(s2)) Phi       (C_out, L) at batch 1, else (B, C_out, L)
        squeeze = diag(s1) Q^T              (L, C_in), shared by the batch
        bias = expand t1 + P t2             (C_out,) at batch 1, else (B, C_out)
    """
    batch, latent = phi.shape[0], phi.shape[-1]
    if batch == 1:
        expand = torch.addmm(p, folded.p_s2, phi.view(latent, latent))
        return expand, torch.addmv(folded.p_t2, expand, folded.t1)
    expand = torch.baddbmm(p, folded.p_s2.expand(batch, -1, -1), phi)
    bias = torch.baddbmm(folded.p_t2_col, expand, folded.t1_col.expand(batch, -1, -1))
    return expand, bias.view(batch, -1)


def sample_kernels(
    weight: Tensor,
    bias: Tensor | None,
    p: Tensor,
    phi: Tensor,
    scale: Tensor,
    folded: Folded,
    workspace: Workspace,
) -> tuple[Tensor, Tensor]:
    """W(x) = Lambda W0 + centre(expand @ squeeze) and its bias for the static conv's
    ``weight`` (C_out, C_in, k, k) and ``bias``: (C_out, C_in, k, k) and (C_out,) at batch
    1, with a leading batch dimension otherwise; into ``workspace`` buffers if given."""
    expand, kernel_bias = expand_and_bias(p, phi, folded)
    batch = phi.shape[0]
    cout, cin, k, _ = weight.shape
    if batch == 1:
        shape, factor = (cout, cin, k, k), scale.view(cout, 1, 1, 1)
    else:
        shape, factor = (batch, cout, cin, k, k), scale.view(batch, cout, 1, 1, 1)
    if workspace is not None:
        residual = workspace("residual", expand.shape[:-1] + (cin,), scale)
        torch.matmul(expand, folded.squeeze, out=residual)
        if k == 1:
            kernel = residual.view(shape).addcmul_(weight, factor)
        else:
            kernel = torch.mul(weight, factor, out=workspace("kernel", shape, scale))
            kernel.view(residual.shape + (k * k,)).select(-1, k * k // 2).add_(residual)
    else:
        kernel = weight * factor
        kernel[..., k // 2, k // 2] += torch.matmul(expand, folded.squeeze)
    if bias is not None:
        kernel_bias = torch.addcmul(kernel_bias, scale.view(kernel_bias.shape), bias)
    return kernel, kernel_bias


def per_sample_conv(x: Tensor, kernel: Tensor, bias: Tensor, stride: int, padding: int) -> Tensor:
    """Each sample convolved with its kernel from :func:`sample_kernels`: a plain conv at
    batch 1, one grouped conv over the batch-folded input beyond."""
    with phase("conv"):
        if kernel.dim() == 4:
            return F.conv2d(x, kernel, bias, stride, padding)
        batch, cin, height, width = x.shape
        cout, k = kernel.shape[1], kernel.shape[-1]
        out = F.conv2d(
            x.reshape(1, batch * cin, height, width),
            kernel.view(batch * cout, cin, k, k),
            bias.flatten(),
            stride,
            padding,
            groups=batch,
        )
        return out.view(batch, cout, out.shape[2], out.shape[3])


def low_rank(
    x: Tensor,
    conv: tuple[Tensor, Tensor | None, int, int],
    p_blocks: tuple[Tensor, int],
    phi: Tensor,
    scale: Tensor,
    folded: Folded,
    workspace: Workspace,
) -> Tensor:
    """Lambda W0 x + P w + P t2 on the feature maps, the BNs folded, with
    w = z + diag(s2) Phi z and z = diag(s1) Q^T x + t1 at the output resolution; ``conv``
    the static conv's (weight, bias, stride, padding), ``p_blocks`` P as stored and its
    number of diagonal blocks; the residual into a ``workspace`` buffer and the output
    into the static conv's if given."""
    weight, bias, stride, padding = conv
    with phase("conv"):
        out = F.conv2d(x, weight, bias, stride, padding)
    with phase("aggregation"):
        batch, cout, height, width = out.shape
        p = block_diagonal(*p_blocks)
        latent_dim = p.shape[1]
        if batch == 1:
            if stride == 1:
                latent = torch.addmm(folded.t1_col, folded.squeeze, x.reshape(x.shape[1], -1))
            else:
                latent = F.conv2d(x, folded.squeeze_4d, folded.t1, stride)
                latent = latent.view(latent_dim, -1)
            mixed = torch.mm(phi.view(latent_dim, latent_dim), latent)
            fused = torch.addcmul(latent, mixed, folded.s2_col)
            shape = (cout, height * width)
            residual = None if workspace is None else workspace("residual_maps", shape, out)
            residual = torch.addmm(folded.p_t2_col, p, fused, out=residual)
        else:
            latent = F.conv2d(x, folded.squeeze_4d, folded.t1, stride).flatten(2)
            fused = torch.addcmul(latent, torch.bmm(phi, latent), folded.s2_col)
            shape = (batch, cout, height * width)
            residual = None if workspace is None else workspace("residual_maps", shape, out)
            expand = p.expand(batch, -1, -1)
            residual = torch.baddbmm(folded.p_t2_col, expand, fused, out=residual)
        factor = scale.view(batch, cout, 1, 1)
        if workspace is not None:
            return torch.addcmul(residual.view_as(out), out, factor, out=out)
        return torch.addcmul(residual.view_as(out), out, factor)
