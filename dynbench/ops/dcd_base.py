"""DCD: Dynamic Convolution Decomposition (Li et al., "Revisiting Dynamic Convolution
via Matrix Decomposition", ICLR 2021).

Eq. 6 of the paper writes the kernel of a 1x1 convolution as

    W(x) = Lambda(x) W0 + P Phi(x) Q^T,

a static kernel ``W0`` scaled per output channel by ``Lambda(x)`` (C_out, diagonal)
plus a low-rank dynamic residual: ``Q^T`` (L x C_in) squeezes the input into an
L-dimensional latent space, ``Phi(x)`` (L x L) fuses the latent channels per
sample and ``P`` (C_out x L) expands them again. For a k x k convolution the paper
recommends "channel fusion alone" (Sec. 4.3): the residual stays 1x1, i.e. it is the
centre tap of the k x k kernel, added to a static k x k conv.

The layer shapes follow the released code (github.com/liyunsheng13/dcd), whose
parameter counts the ODConv paper reports, rather than the paper's prose:

* the dynamic branch pools the input to ``pool_size`` x ``pool_size`` (2 x 2 in the
  released ResNet basic blocks and MobileNetV2 expansion convs), then FC to
  ``squeeze`` units, then a gate in place of a plain activation (an FC squeeze ->
  squeeze whose hard sigmoid multiplies its own input), then two FC heads: L^2
  values for Phi and C_out for Lambda;
* Lambda is a hard sigmoid ``relu6(v + 3) / 3`` (range [0, 2], 1 at v = 0) and
  multiplies the static conv's *output* (the paper's ``y = Lambda (W0 x)`` form);
* the latent path is batch-normalised twice: ``z = BN1(Q^T x)``, then
  ``BN2(Phi z) + z`` goes to ``P``. The fusion actually applied is therefore
  ``I + diag(gamma2 / sigma2) Phi(x)`` plus per-sample biases from the BNs;
* the latent dimension and squeeze follow per-backbone rules
  (see :mod:`dynbench.models.zoo_dcd`); the defaults here are the paper's
  ``L = floor(C / 2^floor(log2 sqrt(C)))`` with C the input channels, and
  ``squeeze = max(C * pool_size^2, L^2) // reduction`` (at least 4), r = 16.

Because of the BNs, the naive path (which builds W(x) per sample) folds them with
their running statistics and exists only in eval mode; in training mode the fast
path normalises with batch statistics, as the released code does. In eval mode the
BNs are affine and the fast path folds them (:mod:`dynbench.ops.dcd_fold`); the conv
then takes the cheaper of two routes (:mod:`dynbench.ops.dcd`).

The paper's ablations switch terms off or make the residual sparse
(:class:`DCDSwitches`): Lambda alone (no P, Q, BNs or Phi head), P Phi Q^T alone (no
Lambda head; Lambda is then ones), and B diagonal blocks P_b Phi_b Q_b^T (Eq. 7), with
P and Q stored as grouped 1x1 conv weights and expanded to block-diagonal matrices
where a route needs them whole.

Every parameter (W0, P, Q, the branch) is read by every image, so
:meth:`DynamicOp.weight_count`'s default (all parameters) is already right.

This module holds what the DCD conv (:mod:`dynbench.ops.dcd`) and the DCD classifier
(:mod:`dynbench.ops.dcd_linear`) share: the branch, P, Q and the BNs, the width rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.base import DynamicOp
from dynbench.ops.dcd_fold import EvalFold, Folded, LatentWeights, affine, block_diagonal, fold_bn
from dynbench.ops.phases import phase

# the routes of the fast path (see DCDConv2d._fast)
UNFOLDED, FOLD_KERNEL, FOLD_FEATURE_MAPS = "unfolded", "fold-kernel", "fold-feature-maps"
LAMBDA_ONLY = "lambda-only"  # no residual: the static output scaled by Lambda
MIN_SQUEEZE = 4  # the released code's floor on the branch's hidden width


def paper_latent_dim(channels: int) -> int:
    """The paper's default L = floor(C / 2^floor(log2 sqrt(C))) (Sec. 3.2).

    floor(log2 sqrt(C)) equals floor(floor(log2 C) / 2), so integer bit length gives
    it without floating-point rounding at powers of two. The formula gives
    sqrt(C) <= L < 2 sqrt(C) (64 -> 8, 128 -> 16), not the L < sqrt(C) of the
    paper's prose ("divide C by 2 until it is less than sqrt C"); the formula is
    what is implemented.
    """
    return channels >> ((channels.bit_length() - 1) // 2)


def default_squeeze(pooled_features: int, phi_size: int, reduction: int) -> int:
    """Hidden width of the branch: the larger of its input and Phi's size over r."""
    return max(max(pooled_features, phi_size) // reduction, MIN_SQUEEZE)


def hard_sigmoid(v: Tensor) -> Tensor:
    """The released code's ``relu6(v + 3) / 3``: 1 at 0, so Lambda starts as identity.

    Computed as twice ``F.hardsigmoid`` (``relu6(v + 3) / 6``), one fused kernel plus
    an exact doubling: the literal expression costs four dispatches, two of them
    with wrapped Python scalars, which adds up over dozens of layers at batch 1.
    """
    half = F.hardsigmoid(v)
    return half + half


@dataclass(frozen=True)
class DCDSwitches:
    """Which terms of the paper's Eq. 6/7 a DCD layer has: its Tables 1 and 3(a) switch
    them one at a time. The defaults are the full layer, Lambda W0 + P Phi Q^T."""

    channel_attention: bool = True  # Lambda(x), the dynamic channel-wise attention
    channel_fusion: bool = True  # the dynamic residual P Phi(x) Q^T
    blocks: int = 1  # B: the residual as B diagonal blocks P_b Phi_b Q_b^T (Eq. 7)

    def __post_init__(self) -> None:
        if not (self.channel_attention or self.channel_fusion):
            raise ValueError("a DCD layer without Lambda and without P Phi Q^T is a static conv")
        if self.blocks < 1 or (self.blocks > 1 and not self.channel_fusion):
            raise ValueError("diagonal blocks need the dynamic residual (channel_fusion)")


class DCDBase(DynamicOp):
    """The parts a DCD conv and the DCD classifier share: P, Q, the BNs and the branch."""

    operator = "dcd"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        latent_dim: int | None,
        squeeze: int | None,
        reduction: int,
        pool_size: int,
        switches: DCDSwitches | None = None,
    ) -> None:
        super().__init__()
        switches = switches or DCDSwitches()
        blocks = switches.blocks
        if in_features % blocks or out_features % blocks:
            raise ValueError(
                f"{blocks} diagonal blocks must divide both {in_features} input and "
                f"{out_features} output channels"
            )
        self.switches = switches
        self.scale_size = out_features  # Lambda's length
        self.blocks = blocks
        self.pool_size = pool_size
        pooled = in_features * pool_size**2
        fusion = switches.channel_fusion
        # L of one diagonal block; latent_dim is the whole latent space (blocks x L).
        self.block_latent = (latent_dim or paper_latent_dim(in_features // blocks)) if fusion else 0
        self.latent_dim = blocks * self.block_latent
        phi_size = blocks * self.block_latent**2  # Phi's non-zero entries: one L x L per block
        self.squeeze = squeeze or default_squeeze(pooled, phi_size, reduction)
        self.route = UNFOLDED  # the fast path's route in the last call, see implementation()
        self.eval_fold = EvalFold()  # the folded BNs and heads, kept between eval calls
        # The branch's bias-free FC layers are plain weight matrices, not nn.Linear: the
        # backbones' initialisers treat every nn.Linear as a classifier with a bias.
        self.fc = nn.Parameter(torch.empty(self.squeeze, pooled))
        self.gate = nn.Parameter(torch.empty(self.squeeze, self.squeeze))
        self.fc_scale = None
        if switches.channel_attention:
            self.fc_scale = nn.Parameter(torch.empty(out_features, self.squeeze))
        self.fc_phi = self.q = self.p = self.bn_q = self.bn_phi = None
        if fusion:
            # Q and P are stored as grouped 1x1 conv weights: block b's Q_b^T is rows
            # b L .. (b+1) L of q, its P_b rows b C_out/B .. of p (see dense_q, dense_p).
            self.q = nn.Parameter(torch.empty(self.latent_dim, in_features // blocks))
            self.p = nn.Parameter(torch.empty(out_features, self.block_latent))
            self.bn_q = nn.BatchNorm1d(self.latent_dim)
            self.bn_phi = nn.BatchNorm1d(self.latent_dim)
            self.fc_phi = nn.Parameter(torch.empty(phi_size, self.squeeze))
        for fc in (self.fc, self.gate, self.fc_phi, self.fc_scale):
            if fc is not None:
                nn.init.kaiming_uniform_(fc, a=math.sqrt(5))  # nn.Linear's default
        if fusion:
            # Q is a 1x1 conv in the released code: He init with fan_out. P starts at zero,
            # where the released code gives it the same He init: with the branch's batch
            # norms still at their initial statistics an eval-mode forward does not
            # normalise the latent path, and Phi(x) grows with the input, so the residual
            # grows with the square of the activations; the released ResNet-18 and
            # ResNet-50 reach inf / NaN by their second stage at init. With P = 0 every
            # layer starts as Lambda(x) W0; P's gradient, P Phi's input, is non-zero from
            # the first step, as for a zero-initialised last layer of a residual branch.
            nn.init.kaiming_normal_(self.q, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(self.p)

    def dense_q(self) -> Tensor:
        """Q^T as a (latent_dim, C_in) matrix: block diagonal when there are blocks."""
        return block_diagonal(self._parameters["q"], self.blocks)

    def dense_p(self) -> Tensor:
        """P as a (C_out, latent_dim) matrix: block diagonal when there are blocks."""
        return block_diagonal(self._parameters["p"], self.blocks)

    def latent_weights(self) -> LatentWeights:
        """The weights the eval fold reads (:class:`dynbench.ops.dcd_fold.LatentWeights`)."""
        params, modules = self._parameters, self._modules
        return LatentWeights(
            params["p"],
            params["q"],
            params["fc_phi"],
            params.get("fc_scale"),  # None without Lambda
            modules["bn_q"],
            modules["bn_phi"],
            self.blocks,
        )

    def foldable(self) -> bool:
        """Whether both BNs are affine maps (eval mode with running statistics)."""
        modules = self._modules
        return not self.training and affine(modules["bn_q"]) and affine(modules["bn_phi"])

    def folded(self, reuse: bool) -> Folded:
        """The eval-mode constants, kept between calls with ``reuse`` (no graph recorded):
        :meth:`dynbench.ops.dcd_fold.EvalFold.constants` on this layer's weights."""
        return self.eval_fold.constants(self.latent_weights(), reuse)

    def train(self, mode: bool = True):
        self.eval_fold.clear()
        return super().train(mode)

    def _branch(self, pooled: Tensor, heads: Tensor | None = None) -> tuple[Tensor | None, Tensor]:
        """Phi (B, L, L) and Lambda (B, C_out) from the pooled, flattened input.

        Phi is None without channel fusion, and block diagonal with blocks; Lambda is
        ones without channel-wise attention, so that every route multiplies it alike.
        ``heads``: the heads packed by :meth:`folded` (one product instead of two,
        each weight read in its faster layout).
        """
        phi_size = 0 if self.fc_phi is None else self.fc_phi.shape[0]
        with phase("attention"):
            y = F.linear(pooled, self.fc)
            y = y * hard_sigmoid(F.linear(y, self.gate))
            if heads is None:
                phi = None if self.fc_phi is None else F.linear(y, self.fc_phi)
                scale = None if self.fc_scale is None else F.linear(y, self.fc_scale)
            else:
                both = torch.mm(y, heads)
                phi, scale = both[:, :phi_size], both[:, phi_size:]
                scale = scale if self.fc_scale is not None else None
            if scale is None:
                scale = y.new_ones(y.shape[0], self.scale_size)
            else:
                scale = hard_sigmoid(scale)
            return (None if phi is None else self._fusion_matrix(phi)), scale

    def _fusion_matrix(self, phi: Tensor) -> Tensor:
        """(B, latent_dim, latent_dim) from the head's output: the blocks on the diagonal."""
        batch, blocks, latent = phi.shape[0], self.blocks, self.block_latent
        if blocks == 1:
            return phi.reshape(batch, latent, latent)
        full = phi.new_zeros(batch, blocks, latent, blocks, latent)
        diagonal = full.diagonal(dim1=1, dim2=3)  # (B, L, L, blocks), a view
        diagonal.copy_(phi.view(batch, blocks, latent, latent).permute(0, 2, 3, 1))
        return full.view(batch, self.latent_dim, self.latent_dim)

    def implementation(self) -> str:
        """``naive``, or ``fast/`` plus the route the last fast call took: ``unfolded`` (the
        released wiring, training mode), ``fold-kernel`` or ``fold-feature-maps`` (eval)."""
        return self.impl if self.impl == "naive" else f"fast/{self.route}"

    def _fuse(self, phi: Tensor, latent: Tensor) -> Tensor:
        """BN2(Phi BN1(z)) + BN1(z) for a latent ``z`` of shape (B, L, positions)."""
        latent = self.bn_q(latent)
        return self.bn_phi(torch.bmm(phi, latent)) + latent

    def _residual_matrix(self, phi: Tensor) -> tuple[Tensor, Tensor]:
        """One sample's residual as a (C_out, C_in) matrix and a (C_out,) bias.

        With the BNs folded, the residual is P (I + diag(s2) Phi)(diag(s1) Q^T x + t1)
        + P t2: linear in x plus a bias that depends on x only through Phi.
        """
        if self.training:
            raise RuntimeError(
                "the naive DCD path folds the branch's batch norms with their running "
                "statistics, so it is defined in eval mode only; call .eval() or use "
                "impl='fast'"
            )
        s1, t1 = fold_bn(self.bn_q)
        s2, t2 = fold_bn(self.bn_phi)
        fusion = torch.eye(self.latent_dim, device=phi.device, dtype=phi.dtype)
        fusion = fusion + s2[:, None] * phi
        p = self.dense_p()
        expand = p @ fusion
        return expand @ (s1[:, None] * self.dense_q()), expand @ t1 + p @ t2

    def _branch_madds(self, batch: int) -> int:
        """The branch's FC layers (pooling and the elementwise gate excluded)."""
        heads = (self.fc, self.gate, self.fc_phi, self.fc_scale)
        return batch * sum(h.numel() for h in heads if h is not None)

    def _scale_madds(self, positions: int) -> int:
        """Lambda on the static output, where there is a Lambda."""
        return positions * self.scale_size if self.fc_scale is not None else 0

    def _kernel_route(
        self, batch: int, in_features: int, out_features: int, taps: int
    ) -> dict[str, int]:
        """The same products on each sample's kernel, once per sample, where the analytic
        parts put them on the feature maps: Lambda W_0 (C_out C_in k^2) and the residual
        P Phi Q^T formed as a matrix (each block (C_out/B) L (L + C_in/B)). The paper
        counts Lambda either way, whichever costs less (Sec. 3.3: min(O(C^2), O(HWC)))."""
        residual = 0
        if self.p is not None:
            latent = self.block_latent
            residual = out_features * latent * (latent + in_features // self.blocks)
        scale = out_features * in_features * taps if self.fc_scale is not None else 0
        return {"aggregation": batch * residual, "feature_scale": batch * scale}

    def _residual_madds(self, positions: int, in_features: int, out_features: int) -> int:
        """Q^T, Phi and P applied at ``positions`` (output pixels x batch); BNs excluded.

        With B diagonal blocks each block's products cost 1/B^2 of the dense ones.
        """
        if self.p is None:
            return 0
        latent, blocks = self.block_latent, self.blocks
        return positions * (in_features * latent + blocks * latent**2 + latent * out_features)
