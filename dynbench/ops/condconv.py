"""CondConv: conditionally parameterized convolutions (Yang et al., NeurIPS 2019).

"CondConv: Conditionally Parameterized Convolutions for Efficient Inference".
A CondConv layer holds E expert kernels and convolves each example with its own
kernel (paper Eq. 2)

    y = sigma(alpha_1 W_1 + ... + alpha_E W_E) * x,   alpha = r(x) = Sigmoid(GAP(x) R),

where the routing r is one fully connected layer (C_in -> E, with bias) on the
globally pooled input. Unlike DY-Conv's softmax the sigmoid routing weights are
independent, so they need not sum to one.

The paper shares one routing function between all the convolutions of a block,
computed from the block input: :class:`CondConvBlock` does this for any block
(a MobileNetV2 inverted residual, a ResNet BasicBlock or Bottleneck), handing the
weights to the block's :class:`CondConv2d` layers built with
``shared_routing=True``. A :class:`CondConv2d` outside such a block routes from
its own input, and :class:`CondLinear` is the CondConv classifier.

The fast path builds the batch's kernels with one matmul over the experts and
runs one grouped convolution on the batch-folded input (at batch 1, a plain
convolution); the naive path builds and applies each sample's kernel in a loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from dynbench.ops.base import DynamicOp, conv_output_madds, fc_madds


def route(fc: nn.Linear, x: Tensor) -> Tensor:
    """r(x) = sigmoid(FC(GAP(x))): one weight in (0, 1) per expert, shape (N, E)."""
    pooled = x.mean((2, 3)) if x.dim() == 4 else x
    return torch.sigmoid(fc(pooled))


def _init_experts(weight: Tensor, bias: Tensor | None) -> None:
    """Each expert initialised as torch initialises the static layer it replaces."""
    for e in range(weight.shape[0]):
        nn.init.kaiming_uniform_(weight[e], a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(weight[0][0].numel())
        nn.init.uniform_(bias, -bound, bound)


class CondConv2d(DynamicOp):
    """Drop-in for ``nn.Conv2d`` (groups and depthwise included) with E expert kernels.

    With ``shared_routing=True`` the layer has no router of its own: the
    enclosing :class:`CondConvBlock` sets :attr:`routing` for the duration of its
    forward, so one routing function serves the whole block, as in the paper.
    """

    operator = "condconv"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = False,
        num_experts: int = 8,
        shared_routing: bool = False,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide {in_channels} and {out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.groups = (
            kernel_size,
            stride,
            padding,
            groups,
        )
        self.num_experts = num_experts
        self.router = None if shared_routing else nn.Linear(in_channels, num_experts)
        # routing weights (N, E) handed over by a CondConvBlock; None outside its forward
        self.routing: Tensor | None = None
        self.weight = nn.Parameter(
            torch.empty(num_experts, out_channels, in_channels // groups, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(num_experts, out_channels)) if bias else None
        _init_experts(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.router is not None:
            with record_function("attention"):
                r = route(self.router, x)
        elif self.routing is not None:
            r = self.routing
        else:
            raise RuntimeError("a shared-routing CondConv2d runs only inside its CondConvBlock")
        if self.impl == "naive":
            return self._forward_naive(x, r)
        n, cin, h, w = x.shape
        k = self.kernel_size
        with record_function("aggregation"):
            weight = self.mix_kernels(r, self.weight).view(
                n * self.out_channels, cin // self.groups, k, k
            )
            bias = None if self.bias is None else (r @ self.bias).flatten()
        with record_function("conv"):
            # sample i meets only its own kernel: groups = batch * groups
            out = F.conv2d(
                x.reshape(1, n * cin, h, w),
                weight,
                bias,
                self.stride,
                self.padding,
                groups=n * self.groups,
            )
        return out.view(n, self.out_channels, *out.shape[-2:])

    def _forward_naive(self, x: Tensor, r: Tensor) -> Tensor:
        outputs = []
        for i in range(x.shape[0]):
            with record_function("aggregation"):
                weight = sum(r[i, e] * self.weight[e] for e in range(self.num_experts))
                bias = None
                if self.bias is not None:
                    bias = sum(r[i, e] * self.bias[e] for e in range(self.num_experts))
            with record_function("conv"):
                outputs.append(
                    F.conv2d(x[i : i + 1], weight, bias, self.stride, self.padding, 1, self.groups)
                )
        return torch.cat(outputs)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        n = x_shape[0]
        kernel = self.weight[0].numel() + (0 if self.bias is None else self.out_channels)
        # a shared router is counted once, by its block's CondConvRouting
        attention = 0 if self.router is None else fc_madds(n, self.in_channels, self.num_experts)
        return {
            "conv": conv_output_madds(out_shape, self.in_channels // self.groups, self.kernel_size),
            "attention": attention,
            "aggregation": n * self.num_experts * kernel,
            "feature_scale": 0,
        }

    def extra_repr(self) -> str:
        shared = ", shared_routing=True" if self.router is None else ""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
            f"bias={self.bias is not None}, num_experts={self.num_experts}{shared}"
        )


class CondLinear(DynamicOp):
    """The CondConv classifier: E expert weight matrices routed by its input vector."""

    operator = "condconv"
    is_classifier = True  # so params_no_classifier leaves out the experts and router

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, num_experts: int = 8
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.num_experts = num_experts
        self.router = nn.Linear(in_features, num_experts)
        self.weight = nn.Parameter(torch.empty(num_experts, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(num_experts, out_features)) if bias else None
        _init_experts(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        with record_function("attention"):
            r = route(self.router, x)
        if self.impl == "naive":
            return self._forward_naive(x, r)
        with record_function("aggregation"):
            weight = self.mix_kernels(r, self.weight).view(-1, self.out_features, self.in_features)
            bias = None if self.bias is None else r @ self.bias
        with record_function("conv"):
            out = torch.bmm(weight, x.unsqueeze(2)).squeeze(2)
        return out if bias is None else out + bias

    def _forward_naive(self, x: Tensor, r: Tensor) -> Tensor:
        outputs = []
        for i in range(x.shape[0]):
            with record_function("aggregation"):
                weight = sum(r[i, e] * self.weight[e] for e in range(self.num_experts))
                bias = None
                if self.bias is not None:
                    bias = sum(r[i, e] * self.bias[e] for e in range(self.num_experts))
            with record_function("conv"):
                outputs.append(F.linear(x[i : i + 1], weight, bias))
        return torch.cat(outputs)

    def analytic_madds(
        self, x_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> dict[str, int]:
        n = x_shape[0]
        matrix = self.weight[0].numel() + (0 if self.bias is None else self.out_features)
        return {
            "conv": fc_madds(n, self.in_features, self.out_features),
            "attention": fc_madds(n, self.in_features, self.num_experts),
            "aggregation": n * self.num_experts * matrix,
            "feature_scale": 0,
        }

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, "
            f"num_experts={self.num_experts}"
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

    def __init__(self, in_channels: int, num_experts: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_experts)

    def forward(self, x: Tensor) -> Tensor:
        with record_function("attention"):
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

    The routing weights are set on the block's shared-routing convs only while
    the block runs, so the block's own forward (and its residual, downsample and
    batch norms) stays untouched.
    """

    def __init__(self, block: nn.Module, in_channels: int, num_experts: int) -> None:
        super().__init__()
        self.routing = CondConvRouting(in_channels, num_experts)
        self.block = block
        # a tuple, not a ModuleList: the convs are already registered inside ``block``
        self._convs = tuple(
            m for m in block.modules() if isinstance(m, CondConv2d) and m.router is None
        )
        if not self._convs:
            raise ValueError("the block has no shared-routing CondConv2d to route")
        for conv in self._convs:
            if conv.num_experts != num_experts:
                raise ValueError(f"a conv has {conv.num_experts} experts, the block {num_experts}")

    def forward(self, x: Tensor) -> Tensor:
        with self._routed(self.routing(x)):
            return self.block(x)

    @contextmanager
    def _routed(self, r: Tensor) -> Iterator[None]:
        for conv in self._convs:
            conv.routing = r
        try:
            yield
        finally:
            # dropping the reference frees the routing (and its graph) after the block
            for conv in self._convs:
                conv.routing = None
