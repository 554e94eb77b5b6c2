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

from __future__ import annotations

import contextlib
import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from dynbench.ops.base import DynamicOp, conv_output_madds, fc_madds

MIN_SQUEEZE = 4  # the released code's floor on the branch's hidden width
# Cost model of the eval-mode paths (see DCDConv2d._kernel_is_cheaper), in multiply-adds:
# writing and re-reading one element of a per-sample kernel, and one extra pass over
# one output element (the residual and Lambda on the feature maps).
KERNEL_ELEMENT_COST = 16
FEATURE_ELEMENT_COST = 16
FOLD_MAX_KERNEL_ELEMENTS = 1 << 22  # per-layer buffer of per-sample kernels: 16 MiB in fp32
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


def _fold_bn(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """(scale, shift) such that bn(v) == scale * v + shift in eval mode."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, torch.addcmul(bn.bias, bn.running_mean, scale, value=-1)


_NO_SCOPE = contextlib.nullcontext()


def _phase(name: str) -> contextlib.AbstractContextManager:
    """``record_function(name)`` while a profiler runs, else nothing.

    Entering a ``record_function`` costs about as much as a small op even with no
    profiler attached, and a DCD layer at batch 1 has only a handful of ops.
    """
    return record_function(name) if torch.autograd._profiler_enabled() else _NO_SCOPE


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

    ATen's adaptive pooling to 2 x 2 walks each window separately: on one thread it
    costs 5 to 10 times a global mean of the same map. Here: a global mean for
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


class _Folded(NamedTuple):
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
    # in = squeeze small, BLAS reads them at about half the memory bandwidth that
    # the transposed layout gets (measured one thread, weights not in cache).
    heads: Tensor | None


class _DCDBase(DynamicOp):
    """The parts a DCD conv and the DCD classifier share: P, Q, the BNs and the branch."""

    operator = "dcd"
    _constants_cache: tuple | None = None  # (key, aliases, _Folded), see _constants

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

    def _branch(self, pooled: Tensor, heads: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Phi (B, L, L) and Lambda (B, C_out) from the pooled, flattened input.

        ``heads``: the two heads packed by :meth:`_constants` (one product instead of
        two, each weight read in its faster layout).
        """
        latent = self.latent_dim
        with _phase("attention"):
            y = F.linear(pooled, self.fc)
            y = y * hard_sigmoid(F.linear(y, self.gate))
            if heads is None:
                phi = F.linear(y, self.fc_phi).view(-1, latent, latent)
                return phi, hard_sigmoid(F.linear(y, self.fc_scale))
            both = torch.mm(y, heads)
            phi = both[:, : latent * latent].reshape(-1, latent, latent)
            return phi, hard_sigmoid(both[:, latent * latent :])

    def _fuse(self, phi: Tensor, latent: Tensor) -> Tensor:
        """BN2(Phi BN1(z)) + BN1(z) for a latent ``z`` of shape (B, L, positions)."""
        latent = self.bn_q(latent)
        return self.bn_phi(torch.bmm(phi, latent)) + latent

    def _foldable(self) -> bool:
        """Whether both BNs are affine maps (eval mode with running statistics)."""
        if self.training:
            return False
        for name in ("bn_q", "bn_phi"):
            bn = self._modules[name]
            if bn.training or bn._buffers.get("running_var") is None:
                return False
        return True

    def _records_graph(self, x: Tensor) -> bool:
        """Whether autograd records this call (then no buffer or constant is reused)."""
        return torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )

    def train(self, mode: bool = True) -> _DCDBase:
        self._constants_cache = None
        return super().train(mode)

    def _constants(self, reuse: bool) -> _Folded:
        """The layer's eval-mode constants (see :class:`_Folded`).

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
            params["fc_scale"],
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

    def _fold_constants(self, heads: bool) -> _Folded:
        s1, t1 = _fold_bn(self.bn_q)
        s2, t2 = _fold_bn(self.bn_phi)
        p = self.p
        p_t2 = torch.mv(p, t2)
        squeeze = s1[:, None] * self.q
        return _Folded(
            p * s2,
            p_t2,
            squeeze,
            t1,
            s2,
            p_t2[:, None],
            t1[:, None],
            s2[:, None],
            squeeze[:, :, None, None],
            torch.cat([self.fc_phi, self.fc_scale]).t().contiguous() if heads else None,
        )

    def _buffer(self, slot: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """:meth:`DynamicOp.workspace`, always a normal tensor: one created under
        inference mode could not be written by a later call outside it."""
        with torch.inference_mode(False):
            return self.workspace(slot, shape, like)

    def _expand(self, phi: Tensor, folded: _Folded) -> tuple[Tensor, Tensor]:
        """The per-sample ``expand`` and ``bias`` of the residual ``expand @ squeeze @ x + bias``.

        With the BNs folded, the residual P (BN2(Phi BN1(Q^T x)) + BN1(Q^T x)) is
        P (I + diag(s2) Phi) (diag(s1) Q^T x + t1) + P t2, so

            expand = P + (P diag(s2)) Phi       (C_out, L) at batch 1, else (B, C_out, L)
            squeeze = diag(s1) Q^T              (L, C_in), shared by the batch
            bias = expand t1 + P t2             (C_out,) at batch 1, else (B, C_out)
        """
        p = self._parameters["p"]
        batch, latent = phi.shape[0], self.latent_dim
        if batch == 1:
            expand = torch.addmm(p, folded.p_s2, phi.view(latent, latent))
            return expand, torch.addmv(folded.p_t2, expand, folded.t1)
        expand = torch.baddbmm(p, folded.p_s2.expand(batch, -1, -1), phi)
        bias = torch.baddbmm(folded.p_t2_col, expand, folded.t1_col.expand(batch, -1, -1))
        return expand, bias.view(batch, -1)

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
        self.groups = 1  # as nn.Conv2d, which this replaces
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        # Eval-mode route: None picks by shape (_kernel_is_cheaper); True forms each
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
            phi, scale = self._branch(self._pooled(x))
            return self._feature_maps(x, phi, scale)
        reuse = not self._records_graph(x)
        with _phase("aggregation"):
            folded = self._constants(reuse)
        phi, scale = self._branch(self._pooled(x), folded.heads)
        fold = self.fold
        if fold is None:
            fold = self._kernel_is_cheaper(x.shape[0], x.shape[2], x.shape[3])
        if not fold:
            return self._low_rank(x, phi, scale, folded, reuse)
        with _phase("aggregation"):
            kernel, bias = self._kernel(phi, scale, folded, reuse)
        return self._per_sample_conv(x, kernel, bias)

    def _kernel_is_cheaper(self, batch: int, height: int, width: int) -> bool:
        """Whether forming W(x) beats applying the residual to the feature maps.

        Per sample, forming costs C_out C_in L (the residual matrix) plus writing and
        re-reading the k x k kernel; the feature-map route costs L (C_in + C_out) per
        output pixel plus passes over the output. Both scale with the batch, and the
        grouped conv of the per-sample kernels kept up with the batched static conv
        up to batch 16 (ResNet-18, MobileNetV2); the kernels' buffer is capped.
        """
        cout, cin, k, latent = (
            self.out_channels,
            self.in_channels,
            self.kernel_size,
            self.latent_dim,
        )
        if batch * cout * cin * k * k > FOLD_MAX_KERNEL_ELEMENTS:
            return False
        stride = self.stride
        positions = ((height - 1) // stride + 1) * ((width - 1) // stride + 1)
        fold = cout * cin * (latent + KERNEL_ELEMENT_COST * k * k)
        low = positions * (latent * (cin + cout) + FEATURE_ELEMENT_COST * cout)
        return fold < low

    def _kernel(
        self, phi: Tensor, scale: Tensor, folded: _Folded, reuse: bool
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
            residual = self._buffer("residual", expand.shape[:-1] + (cin,), scale)
            torch.matmul(expand, folded.squeeze, out=residual)
            if k == 1:
                kernel = residual.view(shape).addcmul_(weight, factor)
            else:
                kernel = torch.mul(weight, factor, out=self._buffer("kernel", shape, scale))
                kernel.view(residual.shape + (k * k,)).select(-1, k * k // 2).add_(residual)
        else:
            kernel = weight * factor
            kernel[..., k // 2, k // 2] += torch.matmul(expand, folded.squeeze)
        if self.bias is not None:
            bias = torch.addcmul(bias, scale.view(bias.shape), self.bias)
        return kernel, bias

    def _per_sample_conv(self, x: Tensor, kernel: Tensor, bias: Tensor) -> Tensor:
        with _phase("conv"):
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
        self, x: Tensor, phi: Tensor, scale: Tensor, folded: _Folded, reuse: bool
    ) -> Tensor:
        """Lambda W0 x + P w + P t2 on the feature maps, the BNs folded, with
        w = z + diag(s2) Phi z and z = diag(s1) Q^T x + t1 at the output resolution."""
        with _phase("conv"):
            out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        with _phase("aggregation"):
            batch, cout, height, width = out.shape
            p, latent_dim = self._parameters["p"], self.latent_dim
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
                residual = self._buffer("residual_maps", shape, out) if reuse else None
                residual = torch.addmm(folded.p_t2_col, p, fused, out=residual)
            else:
                latent = F.conv2d(x, folded.squeeze_4d, folded.t1, self.stride).flatten(2)
                fused = torch.addcmul(latent, torch.bmm(phi, latent), folded.s2_col)
                shape = (batch, cout, height * width)
                residual = self._buffer("residual_maps", shape, out) if reuse else None
                expand = p.expand(batch, -1, -1)
                residual = torch.baddbmm(folded.p_t2_col, expand, fused, out=residual)
            factor = scale.view(batch, cout, 1, 1)
            if reuse:
                return torch.addcmul(residual.view_as(out), out, factor, out=out)
            return torch.addcmul(residual.view_as(out), out, factor)

    def _feature_maps(self, x: Tensor, phi: Tensor, scale: Tensor) -> Tensor:
        """The released code's wiring: Q^T, Phi and P applied to feature maps, batched,
        with the BNs as modules (batch statistics in training mode)."""
        with _phase("conv"):
            out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        with _phase("aggregation"):
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
            with _phase("aggregation"):
                residual, bias = self._residual_matrix(phi[0])
                weight = scale[0, :, None, None, None] * self.weight
                weight[:, :, centre, centre] += residual
                if self.bias is not None:
                    bias = bias + scale[0] * self.bias
            with _phase("conv"):
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
        if not self._foldable():
            phi, scale = self._branch(x)
            with _phase("conv"):
                out = F.linear(x, self.weight, self.bias)
            with _phase("aggregation"):
                fused = self._fuse(phi, F.linear(x, self.q)[:, :, None])[:, :, 0]
                return torch.addcmul(F.linear(fused, self.p), out, scale)
        # The BNs folded: P (z + diag(s2) Phi z) + P t2 with z = diag(s1) Q^T x + t1,
        # on the features directly (forming W(x) would cost C_out C_in L per sample).
        with _phase("aggregation"):
            folded = self._constants(not self._records_graph(x))
        phi, scale = self._branch(x, folded.heads)
        with _phase("conv"):
            out = F.linear(x, self.weight, self.bias)
        with _phase("aggregation"):
            latent = F.linear(x, folded.squeeze, folded.t1)
            mixed = torch.bmm(phi, latent.view(*latent.shape, 1)).view(latent.shape)
            fused = torch.addcmul(latent, mixed, folded.s2)
            return torch.addcmul(F.linear(fused, self.p, folded.p_t2), out, scale)

    def _naive(self, x: Tensor) -> Tensor:
        """Per sample: build W(x) = Lambda W0 + P Phi Q^T and b(x), then one matvec."""
        outputs = []
        for sample in x.split(1):
            phi, scale = self._branch(sample)
            with _phase("aggregation"):
                residual, bias = self._residual_matrix(phi[0])
                weight = scale[0, :, None] * self.weight + residual
                if self.bias is not None:
                    bias = bias + scale[0] * self.bias
            with _phase("conv"):
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
