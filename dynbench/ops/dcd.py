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
shape, the cheaper of two routes (:meth:`DCDConv2d._kernel_is_cheaper`):

* W(x) per sample, the whole residual in the centre tap, and one conv (a grouped
  conv over the batch beyond batch 1): cheap where the kernel is small next to the
  feature maps (ResNet's first two stages, most MobileNetV2 layers);
* the static conv plus the low-rank residual on the feature maps, the BNs folded
  into its constants: cheap where the kernel is large (ResNet's last two stages).

Both build their per-call tensors into reused buffers when autograd records nothing,
and keep the folded constants between calls (:meth:`_DCDBase._constants`).

Every parameter (W0, P, Q, the branch) is read by every image, so
:meth:`DynamicOp.weight_count`'s default (all parameters) is already right.
"""

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.base import DynamicOp, conv_madds, fc_madds, phase
from dynbench.ops.dcd_fold import ConvEvalFold, EvalFold, fold_bn
from dynbench.ops.dcd_route import kernel_is_cheaper

# the routes of the fast path (see DCDConv2d._fast)
UNFOLDED, FOLD_KERNEL, FOLD_FEATURE_MAPS = "unfolded", "fold-kernel", "fold-feature-maps"
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


def default_squeeze(pooled_features: int, latent_dim: int, reduction: int) -> int:
    """Hidden width of the branch: the larger of its input and output sizes over r."""
    return max(max(pooled_features, latent_dim**2) // reduction, MIN_SQUEEZE)


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
    """(size^2, height * width): adaptive average pooling to size x size as a matrix."""

    def windows(n: int) -> Tensor:
        rows = torch.zeros(size, n, dtype=torch.float64)
        for i in range(size):
            start, end = (i * n) // size, -(-(i + 1) * n // size)
            rows[i, start:end] = 1.0 / (end - start)
        return rows

    with torch.inference_mode(False):
        full = windows(height)[:, None, :, None] * windows(width)[None, :, None, :]
        return full.reshape(size * size, height * width).to(dtype=dtype, device=device)


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
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim or paper_latent_dim(in_features)
        self.pool_size = pool_size
        pooled = in_features * pool_size**2
        self.squeeze = squeeze or default_squeeze(pooled, self.latent_dim, reduction)
        self.q = nn.Parameter(torch.empty(self.latent_dim, in_features))
        self.p = nn.Parameter(torch.empty(out_features, self.latent_dim))
        self.route = UNFOLDED  # the fast path's route in the last call, see implementation()
        self.bn_q = nn.BatchNorm1d(self.latent_dim)
        self.bn_phi = nn.BatchNorm1d(self.latent_dim)
        # The branch's bias-free FC layers are plain weight matrices, not nn.Linear: the
        # backbones' initialisers treat every nn.Linear as a classifier with a bias.
        self.fc = nn.Parameter(torch.empty(self.squeeze, pooled))
        self.gate = nn.Parameter(torch.empty(self.squeeze, self.squeeze))
        self.fc_phi = nn.Parameter(torch.empty(self.latent_dim**2, self.squeeze))
        self.fc_scale = nn.Parameter(torch.empty(out_features, self.squeeze))
        for fc in (self.fc, self.gate, self.fc_phi, self.fc_scale):
            nn.init.kaiming_uniform_(fc, a=math.sqrt(5))  # nn.Linear's default
        # Q and P are 1x1 convs in the released code: He init with fan_out.
        nn.init.kaiming_normal_(self.q, mode="fan_out", nonlinearity="relu")
        nn.init.kaiming_normal_(self.p, mode="fan_out", nonlinearity="relu")

    def _branch(self, pooled: Tensor, heads: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Phi (B, L, L) and Lambda (B, C_out) from the pooled, flattened input.

        ``heads``: the two heads packed by :meth:`_constants` (one product instead of
        two, each weight read in its faster layout).
        """
        latent = self.latent_dim
        with phase("attention"):
            y = F.linear(pooled, self.fc)
            y = y * hard_sigmoid(F.linear(y, self.gate))
            if heads is None:
                phi = F.linear(y, self.fc_phi).view(-1, latent, latent)
                return phi, hard_sigmoid(F.linear(y, self.fc_scale))
            both = torch.mm(y, heads)
            phi = both[:, : latent * latent].reshape(-1, latent, latent)
            return phi, hard_sigmoid(both[:, latent * latent :])

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
        expand = self.p @ fusion
        return expand @ (s1[:, None] * self.q), expand @ t1 + self.p @ t2

    def _branch_madds(self, batch: int, out_features: int) -> int:
        """The branch's FC layers (pooling and the elementwise gate excluded)."""
        return batch * (
            self.fc.shape[1] * self.squeeze
            + self.squeeze**2
            + self.squeeze * self.latent_dim**2
            + self.squeeze * out_features
        )

    def _residual_madds(self, positions: int, in_features: int, out_features: int) -> int:
        """Q^T, Phi and P applied at ``positions`` (output pixels x batch); BNs excluded."""
        latent = self.latent_dim
        return positions * (in_features * latent + latent**2 + latent * out_features)


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
    ) -> None:
        if kernel_size % 2 == 0 or padding != kernel_size // 2:
            raise ValueError(
                "DCDConv2d needs an odd kernel with padding kernel_size // 2, so that the "
                f"1x1 residual lines up with the centre tap (got k={kernel_size}, "
                f"padding={padding})"
            )
        super().__init__(in_channels, out_channels, latent_dim, squeeze, reduction, pool_size)
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
            f"pool_size={self.pool_size}, impl={self.impl!r}"
        )

    def forward(self, x: Tensor) -> Tensor:
        return self._fast(x) if self.impl == "fast" else self._naive(x)

    def _pooled(self, x: Tensor) -> Tensor:
        return adaptive_pool_flat(x, self.pool_size)

    def _fast(self, x: Tensor) -> Tensor:
        """Eval mode: the BNs folded, either into each sample's kernel (one conv) or into
        a low-rank residual on the feature maps, whichever the cost model prefers;
        training mode: the released code's wiring (:meth:`_feature_maps`)."""
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
            latent = F.conv2d(x, self.q[:, :, None, None], stride=self.stride)
            batch, _, height, width = latent.shape
            fused = self._fuse(phi, latent.flatten(2)).view(batch, -1, height, width)
            residual = F.conv2d(fused, self.p[:, :, None, None])
            return torch.addcmul(residual, out, scale[:, :, None, None])

    def _naive(self, x: Tensor) -> Tensor:
        """Per sample: build W(x) = Lambda W0 + centre(P Phi Q^T) and its bias, convolve."""
        centre = self.kernel_size // 2
        outputs = []
        for sample in x.split(1):
            phi, scale = self._branch(self._pooled(sample))
            with phase("aggregation"):
                residual, bias = self._residual_matrix(phi[0])
                weight = scale[0, :, None, None, None] * self.weight
                weight[:, :, centre, centre] += residual
                if self.bias is not None:
                    bias = bias + scale[0] * self.bias
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
        per sample (see :meth:`_kernel_is_cheaper`); the conv and attention parts,
        which the papers count, are the same either way.
        """
        batch, out_channels, height, width = out_shape
        positions = batch * height * width
        return {
            "conv": conv_madds(out_shape, self.in_channels, self.kernel_size),
            "attention": self._branch_madds(batch, out_channels),
            "aggregation": self._residual_madds(positions, self.in_channels, out_channels),
            "feature_scale": positions * out_channels,
        }


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
            "attention": self._branch_madds(batch, self.out_features),
            "aggregation": self._residual_madds(batch, self.in_features, self.out_features),
            "feature_scale": batch * self.out_features,
        }
