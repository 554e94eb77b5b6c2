"""CondConv: conditionally parameterized convolutions (Yang et al., NeurIPS 2019).

"CondConv: Conditionally Parameterized Convolutions for Efficient Inference".
A CondConv layer holds K expert kernels and convolves each example with its own
kernel (paper Eq. 2)

    y = sigma(alpha_1 W_1 + ... + alpha_K W_K) * x,   alpha = r(x) = Sigmoid(GAP(x) R),

where the routing r is one fully connected layer (C_in -> K, with bias) on the
globally pooled input. Unlike DY-Conv's softmax the sigmoid routing weights are
independent, so they need not sum to one.

The paper shares one routing function between all the convolutions of a block,
computed from the block input: :class:`CondConvBlock` does this for any block
(a MobileNetV2 inverted residual, a ResNet BasicBlock or Bottleneck), passing the
weights as a forward argument (as timm's ``CondConv2d`` takes them) to the block's
:class:`CondConv2d` layers built with ``shared_routing=True``. A :class:`CondConv2d`
outside such a block routes from its own input, and :class:`CondLinear` is the
CondConv classifier.

The fast path builds the batch's kernels with one matmul over the experts and
runs one grouped convolution on the batch-folded input (at batch 1, a plain
convolution); the classifier's fast path runs its K experts as one linear layer and
mixes their outputs instead. The naive path builds and applies each sample's kernel in
a loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops.analytic_madds import fc_madds
from dynbench.ops.base import DynamicOp
from dynbench.ops.kernel_mixing import KernelDynamicConv
from dynbench.ops.phases import phase


def route(fc: nn.Linear, x: Tensor) -> Tensor:
    """r(x) = sigmoid(FC(GAP(x))): one weight in (0, 1) per expert, shape (N, K)."""
    pooled = x.mean((2, 3)) if x.dim() == 4 else x
    return torch.sigmoid(fc(pooled))


class CondConv2d(KernelDynamicConv):
    """Drop-in for ``nn.Conv2d`` (groups and depthwise included) with K expert kernels.

    With ``shared_routing=True`` the layer has no router of its own and takes the
    routing weights (N, K) of its :class:`CondConvBlock` as ``forward(x, routing)``.
    """

    operator = "condconv"
    takes_routing = True  # see dynbench.models.layers.run_routed

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = False,
        num_kernels: int = 8,
        shared_routing: bool = False,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, groups, num_kernels, bias
        )
        self.router = None if shared_routing else nn.Linear(in_channels, num_kernels)

    def forward(self, x: Tensor, routing: Tensor | None = None) -> Tensor:
        if self.router is not None:
            with phase("attention"):
                routing = route(self.router, x)
        elif routing is None:
            raise RuntimeError("a shared-routing CondConv2d runs only inside its CondConvBlock")
        return self.mixed_conv(x, routing)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        n = x_shape[0]
        # a shared router is counted once, by its block's CondConvRouting
        attention = 0 if self.router is None else fc_madds(n, self.in_channels, self.num_kernels)
        return {
            "conv": self.conv_part_madds(out_shape),
            "attention": attention,
            **self.mixing_madds(n),
        }

    def extra_repr(self) -> str:
        shared = ", shared_routing=True" if self.router is None else ""
        return super().extra_repr() + shared


class CondLinear(DynamicOp):
    """The CondConv classifier: K expert weight matrices routed by its input vector."""

    operator = "condconv"
    is_classifier = True  # so params_no_classifier leaves out the experts and router

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, num_kernels: int = 8
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.num_kernels = num_kernels
        self.router = nn.Linear(in_features, num_kernels)
        self.weight = nn.Parameter(torch.empty(num_kernels, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(num_kernels, out_features)) if bias else None
        for e in range(num_kernels):
            nn.init.kaiming_uniform_(self.weight[e], a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """The fast path runs the K experts as one linear layer and mixes their outputs,
        y_b = sum_k r_bk (W_k x_b + b_k): on a vector input it reads the K weight matrices
        once for the whole batch (one GEMM), where forming each sample's matrix would read
        them, write B matrices and read those back. It does K out MAdds per sample to mix
        instead of K in out to form a matrix, and K in out instead of in out to apply it:
        the same K in out order, so the analytic count stays the papers' dataflow's. It is
        the one fast path, recorded as ``fast``: not the kernel-mixing convs' shape-chosen
        ``fast/experts`` route, which the batch-sweep report marks where it switches on."""
        with phase("attention"):
            r = route(self.router, x)
        if self.impl == "naive":
            return self._forward_naive(x, r)
        k, out_features, in_features = self.weight.shape
        with phase("conv"):
            experts = F.linear(x, self.weight.view(k * out_features, in_features))
        with phase("aggregation"):
            out = torch.bmm(r.unsqueeze(1), experts.view(-1, k, out_features)).squeeze(1)
            return out if self.bias is None else out + r @ self.bias

    def _forward_naive(self, x: Tensor, r: Tensor) -> Tensor:
        outputs = []
        for i in range(x.shape[0]):
            with phase("aggregation"):
                weight, bias = self.one_sample(r[i], self.weight, self.bias)
            with phase("conv"):
                outputs.append(F.linear(x[i : i + 1], weight, bias))
        return torch.cat(outputs)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        n = x_shape[0]
        matrix = self.weight[0].numel() + (0 if self.bias is None else self.out_features)
        return {
            "conv": fc_madds(n, self.in_features, self.out_features),
            "attention": fc_madds(n, self.in_features, self.num_kernels),
            "aggregation": n * self.num_kernels * matrix,
            "feature_scale": 0,
        }

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, "
            f"num_kernels={self.num_kernels}"
        )


class CondConvRouting(DynamicOp):
    """A block's shared routing function, r(x) = sigmoid(FC(GAP(x))) on the block input.

    Its own module (not part of :class:`CondConvBlock`) so that the MAdds
    counters see the router once, while the static layers a block may keep (a
    ResNet downsample conv) are still counted as static layers. There is a single
    path: the routing is already one batched matmul, with nothing per sample to
    loop over.
    """

    operator = "condconv"

    def __init__(self, in_channels: int, num_kernels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_kernels)

    def forward(self, x: Tensor) -> Tensor:
        with phase("attention"):
            return route(self.fc, x)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        return {
            "conv": 0,
            "attention": fc_madds(x_shape[0], self.fc.in_features, self.fc.out_features),
            "aggregation": 0,
            "feature_scale": 0,
        }

    def static_weight_count(self) -> int:
        """A static network has no router: it replaces no layer."""
        return 0


class CondConvBlock(nn.Module):
    """Wraps a block whose CondConv2d layers share one routing from the block input.

    The block's forward takes the routing as a keyword argument and hands it to
    the convs that take one (``forward(x, routing=...)``), so its residual,
    downsample and batch norms stay untouched.
    """

    def __init__(self, block: nn.Module, in_channels: int, num_kernels: int) -> None:
        super().__init__()
        self.routing = CondConvRouting(in_channels, num_kernels)
        self.block = block
        convs = [m for m in block.modules() if isinstance(m, CondConv2d) and m.router is None]
        if not convs:
            raise ValueError("the block has no shared-routing CondConv2d to route")
        for conv in convs:
            if conv.num_kernels != num_kernels:
                raise ValueError(f"a conv has {conv.num_kernels} experts, the block {num_kernels}")

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x, routing=self.routing(x))
