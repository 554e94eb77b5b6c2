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
path normalises with batch statistics, as the released code does.

Every parameter (W0, P, Q, the branch) is read by every image, so
:meth:`DynamicOp.weight_count`'s default (all parameters) is already right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from dynbench.ops.base import DynamicOp, conv_output_madds, fc_madds

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


def default_squeeze(pooled_features: int, latent_dim: int, reduction: int) -> int:
    """Hidden width of the branch: the larger of its input and output sizes over r."""
    return max(max(pooled_features, latent_dim**2) // reduction, MIN_SQUEEZE)


def hard_sigmoid(v: Tensor) -> Tensor:
    """The released code's ``relu6(v + 3) / 3``: 1 at 0, so Lambda starts as identity."""
    return F.relu6(v + 3.0) / 3.0


def _fold_bn(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """(scale, shift) such that bn(v) == scale * v + shift in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class _DCDBase(DynamicOp):
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

    def _branch(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """Phi (B, L, L) and Lambda (B, C_out) from the pooled, flattened input."""
        with record_function("attention"):
            y = F.linear(pooled, self.fc)
            y = y * hard_sigmoid(F.linear(y, self.gate))
            phi = F.linear(y, self.fc_phi).view(-1, self.latent_dim, self.latent_dim)
            return phi, hard_sigmoid(F.linear(y, self.fc_scale))

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
        s1, t1 = _fold_bn(self.bn_q)
        s2, t2 = _fold_bn(self.bn_phi)
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


class DCDConv2d(_DCDBase):
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
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
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
        return F.adaptive_avg_pool2d(x, self.pool_size).flatten(1)

    def _fast(self, x: Tensor) -> Tensor:
        """The released code's wiring: Q^T, Phi and P applied to feature maps, batched.

        Measured against the alternative (build each sample's kernel with bmm, fold
        the BNs, one grouped conv) at batch 1 on one CPU thread: ~30% faster for whole
        ResNet-18/50, within noise for MobileNetV2. Forming W(x) costs
        C_out x C_in x (k^2 + L) per sample, more than applying the residual at the
        14 x 14 and 7 x 7 stages; and only this wiring also trains (BN batch stats).
        """
        phi, scale = self._branch(self._pooled(x))
        with record_function("conv"):
            out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        with record_function("aggregation"):
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
            with record_function("aggregation"):
                residual, bias = self._residual_matrix(phi[0])
                weight = scale[0, :, None, None, None] * self.weight
                weight[:, :, centre, centre] += residual
                if self.bias is not None:
                    bias = bias + scale[0] * self.bias
            with record_function("conv"):
                outputs.append(F.conv2d(sample, weight, bias, self.stride, self.padding))
        return torch.cat(outputs)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        """MAdds of the fast path at these shapes.

        aggregation is the dynamic residual *as applied* (Q^T, Phi, P on the feature
        map at the output resolution), not the cost of forming W(x), since the fast
        path never forms it; feature_scale is Lambda times the static conv's output.
        """
        batch, out_channels, height, width = out_shape
        positions = batch * height * width
        return {
            "conv": conv_output_madds(out_shape, self.in_channels, self.kernel_size),
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
        phi, scale = self._branch(x)
        with record_function("conv"):
            out = F.linear(x, self.weight, self.bias)
        with record_function("aggregation"):
            fused = self._fuse(phi, F.linear(x, self.q)[:, :, None])
            return torch.addcmul(F.linear(fused[:, :, 0], self.p), out, scale)

    def _naive(self, x: Tensor) -> Tensor:
        """Per sample: build W(x) = Lambda W0 + P Phi Q^T and b(x), then one matvec."""
        outputs = []
        for sample in x.split(1):
            phi, scale = self._branch(sample)
            with record_function("aggregation"):
                residual, bias = self._residual_matrix(phi[0])
                weight = scale[0, :, None] * self.weight + residual
                if self.bias is not None:
                    bias = bias + scale[0] * self.bias
            with record_function("conv"):
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
