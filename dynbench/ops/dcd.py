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
BNs are affine, so the fast path folds them too and then takes, per layer and input
shape, the cheaper of two routes (:meth:`DCDConv2d.kernel_is_cheaper`):

* W(x) per sample, the whole residual in the centre tap, and one conv (a grouped
  conv over the batch beyond batch 1): cheap where the kernel is small next to the
  feature maps (ResNet's first two stages, most MobileNetV2 layers);
* the static conv plus the low-rank residual on the feature maps, the BNs folded
  into its constants: cheap where the kernel is large (ResNet's last two stages).

Both build their per-call tensors into reused buffers when autograd records nothing,
and keep the folded constants between calls (:meth:`_DCDBase._constants`).

The paper's ablations switch terms off or make the residual sparse
(:class:`DCDSwitches`): Lambda alone (no P, Q, BNs or Phi head), P Phi Q^T alone (no
Lambda head; Lambda is then ones), and B diagonal blocks P_b Phi_b Q_b^T (Eq. 7), with
P and Q stored as grouped 1x1 conv weights and expanded to block-diagonal matrices
where a route needs them whole.

Every parameter (W0, P, Q, the branch) is read by every image, so
:meth:`DynamicOp.weight_count`'s default (all parameters) is already right.
"""

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.base import DynamicOp, conv_madds, fc_madds, phase
from dynbench.ops.dcd_fold import ConvEvalFold, EvalFold, fold_bn
from dynbench.ops.dcd_route import kernel_is_cheaper

# the routes of the fast path (see DCDConv2d._fast)
UNFOLDED, FOLD_KERNEL, FOLD_FEATURE_MAPS = "unfolded", "fold-kernel", "fold-feature-maps"
LAMBDA_ONLY = "lambda-only"  # no residual: the static output scaled by Lambda
MIN_SQUEEZE = 4  # the released code's floor on the branch's hidden width
LINEAR_POOL_MAX = 32 * 32  # maps up to this many pixels pool as one matmul


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


class _DCDBase(EvalFold, DynamicOp):
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
        q = self._parameters["q"]
        return q if self.blocks == 1 else torch.block_diag(*q.chunk(self.blocks))

    def dense_p(self) -> Tensor:
        """P as a (C_out, latent_dim) matrix: block diagonal when there are blocks."""
        p = self._parameters["p"]
        return p if self.blocks == 1 else torch.block_diag(*p.chunk(self.blocks))

    def _branch(self, pooled: Tensor, heads: Tensor | None = None) -> tuple[Tensor | None, Tensor]:
        """Phi (B, L, L) and Lambda (B, C_out) from the pooled, flattened input.

        Phi is None without channel fusion, and block diagonal with blocks; Lambda is
        ones without channel-wise attention, so that every route multiplies it alike.
        ``heads``: the heads packed by :meth:`_constants` (one product instead of two,
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


class DCDConv2d(ConvEvalFold, _DCDBase):
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
        if not self._foldable():
            self.route = UNFOLDED
            phi, scale = self._branch(self._pooled(x))
            return self._feature_maps(x, phi, scale)
        reuse = not self.records_graph(x)
        with phase("aggregation"):
            folded = self._constants(reuse)
        phi, scale = self._branch(self._pooled(x), folded.heads)
        fold = self.fold
        if fold is None:
            fold = self.kernel_is_cheaper(x.shape[0], x.shape[2], x.shape[3])
        if not fold:
            self.route = FOLD_FEATURE_MAPS
            return self._low_rank(x, phi, scale, folded, reuse)
        self.route = FOLD_KERNEL
        with phase("aggregation"):
            kernel, bias = self._kernel(phi, scale, folded, reuse)
        return self._per_sample_conv(x, kernel, bias)

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


class DCDLinear(_DCDBase):
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
        if not self._foldable():
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
            folded = self._constants(not self.records_graph(x))
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
