"""ODConv's attention branch: one squeeze and four heads (Li, Zhou & Yao, ICLR 2022).

The branch is GAP -> 1x1 conv (C_in -> max(int(C_in * r), 16), no bias) -> BN -> ReLU ->
four 1x1 heads: a_c over input channels, a_f over output filters, a_s over the k x k
spatial positions (each sigmoid(z / T)) and a_w over the n kernels (softmax(z / T)). A
head is left out where it has nothing to do or where the attention-type ablation drops it
(:class:`ODConvAttention`); the conv that uses the attentions is
:class:`dynbench.ops.odconv.ODConv2d`.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynbench.ops import compiled_attention
from dynbench.ops.base import conv1x1_on_vectors, set_on_change, squeeze

# The four attentions (paper: alpha_s, alpha_c, alpha_f, alpha_w).
SPATIAL, CHANNEL, FILTER, KERNEL = "spatial", "channel", "filter", "kernel"
ALL_ATTENTIONS = frozenset((SPATIAL, CHANNEL, FILTER, KERNEL))
# channel, filter, spatial and kernel attentions; None for a head the layer leaves out
Attentions = tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]
# a tensor's in-place version counter (folded_weights compares the kept tensors' in one pass)
_VERSION = operator.attrgetter("_version")


class ODConvAttention(nn.Module):
    """The shared squeeze branch and its four attention heads."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        groups: int,
        num_kernels: int,
        reduction: float = 1 / 16,
        min_channels: int = 16,
        temperature: float = 1.0,
        attentions: frozenset[str] = ALL_ATTENTIONS,
    ) -> None:
        super().__init__()
        if not attentions or not attentions <= ALL_ATTENTIONS:
            raise ValueError(f"attentions must be a non-empty subset of {sorted(ALL_ATTENTIONS)}")
        if num_kernels > 1 and KERNEL not in attentions:
            raise ValueError("n > 1 kernels need the kernel-wise attention to mix them")
        hidden = max(int(in_channels * reduction), min_channels)
        self.hidden = hidden
        self.temperature = temperature
        self.fc = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        depthwise = in_channels == groups == out_channels

        def head(name: str, size: int, useful: bool) -> nn.Conv2d | None:
            return nn.Conv2d(hidden, size, 1) if name in attentions and useful else None

        self.channel_fc = head(CHANNEL, in_channels, True)
        self.filter_fc = head(FILTER, out_channels, not depthwise)
        self.spatial_fc = head(SPATIAL, kernel_size**2, kernel_size > 1)
        self.kernel_fc = head(KERNEL, num_kernels, num_kernels > 1)
        # the folded heads' widths in the order of their rows (channel, filter, spatial,
        # kernel; absent heads left out), and for each attention the index of its part
        # among them, or of a trailing None (see _forward_folded)
        present = [h for h in self.heads() if h is not None]
        self._split = tuple(h.out_channels for h in present)
        slots = iter(range(len(present)))
        self._take = tuple(len(present) if h is None else next(slots) for h in self.heads())
        # the rows of the folded logits that are gates (sigmoid): all but the kernel head's
        self._gates = sum(self._split) - (0 if self.kernel_fc is None else num_kernels)
        self._folded: tuple | None = None  # see folded_weights
        self.compiled = False  # whether the last call ran the compiled branch
        self.register_load_state_dict_post_hook(self.refold)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Attentions:
        """The fast route: the squeeze and each head a matrix product on the pooled vector
        (the 1x1 convs' weights viewed as matrices), batch norm one functional call in eval;
        in eval without autograd, the folded branch (:meth:`folded_weights`): two matrix
        products in all.

        Attentions: channel [B,Cin], filter [B,Cout], spatial [B,k*k], kernel [B,n];
        a head that is left out returns None.
        """
        if not self.training and not torch.is_grad_enabled():
            return self._forward_folded(x)
        set_on_change(self, "compiled", False)
        t = self.temperature
        z = squeeze(x, self.fc, self.bn)

        def logits(fc: nn.Conv2d) -> Tensor:
            out = conv1x1_on_vectors(z, fc)
            return out if t == 1 else out / t

        def gate(fc: nn.Conv2d | None) -> Tensor | None:
            return None if fc is None else torch.sigmoid(logits(fc))

        kernel = None if self.kernel_fc is None else torch.softmax(logits(self.kernel_fc), dim=1)
        return gate(self.channel_fc), gate(self.filter_fc), gate(self.spatial_fc), kernel

    def folded_weights(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(squeeze weight, squeeze bias, heads' weight, heads' bias) of the branch in eval:
        the batch norm folded into the squeeze's 1x1 conv, the heads stacked into one matrix
        (channel, filter, spatial, kernel rows) and divided by the temperature.

        Each head and the batch norm is an op of its own, and at batch 1 an op's dispatch
        costs more than its arithmetic; folded, the branch is pool, two ``F.linear`` and the
        gates. Kept between calls and formed again when a weight, a statistic or the
        temperature changes (the tensors' versions: in-place updates, ``load_state_dict``'s
        copies), after ``load_state_dict`` (which may assign new tensors), ``.to()`` and the
        like, or on another dtype or device. A weight replaced by assigning a new
        ``nn.Parameter`` to a head needs :meth:`refold`. The check reads the kept tensors'
        versions only: looking each weight up through its module costs more than the
        folding saves."""
        folded = self._folded
        if (
            folded is not None
            and folded[0] == (self.temperature, like.dtype, like.device)
            and list(map(_VERSION, folded[1])) == folded[2]
        ):
            return folded[3]
        sources = [self.fc.weight, self.bn.weight, self.bn.bias]
        sources += [self.bn.running_mean, self.bn.running_var]
        for h in self.heads():
            if h is not None:
                sources += [h.weight, h.bias]
        key = (self.temperature, like.dtype, like.device)
        # normal tensors, usable by a later call outside inference mode
        with torch.inference_mode(False), torch.no_grad():
            bn = self.bn
            gain = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            squeeze_w = self.fc.weight.view(self.hidden, -1) * gain[:, None]
            squeeze_b = bn.bias - bn.running_mean * gain
            heads = [h for h in self.heads() if h is not None]
            t = self.temperature
            heads_w = torch.cat([h.weight.view(h.out_channels, -1) for h in heads]) / t
            heads_b = torch.cat([h.bias for h in heads]) / t
            weights = tuple(
                w.to(like.device, like.dtype) for w in (squeeze_w, squeeze_b, heads_w, heads_b)
            )
        self._folded = (key, sources, list(map(_VERSION, sources)), weights)
        return weights

    def refold(self, *_: object) -> None:
        """Forget the folded branch: the next eval call without autograd folds afresh."""
        self._folded = None

    def train(self, mode: bool = True) -> ODConvAttention:
        """Switching to eval folds the branch at once (not in the first forward), so that
        every forward in eval runs the same ops, whichever is first: a MAdds counter or
        profiler attached to one call sees the branch, never the folding."""
        super().train(mode)
        self.refold()
        if not mode and not any(m.training for m in self.modules()):
            weight = self.fc.weight
            self.folded_weights(weight.detach())
        return self

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 (nn.Module's signature)
        """``.to()``, ``.double()`` and the like may swap a weight's storage: fold afresh."""
        self.refold()
        return super()._apply(fn, recurse)

    def _forward_folded(self, x: Tensor) -> Attentions:
        """:meth:`forward` through :meth:`folded_weights` (eval, no autograd): the pooled
        vector, two ``F.linear`` and the gates' sigmoid, as one compiled loop where it
        applies (:mod:`dynbench.ops.compiled_attention`; :attr:`compiled` says whether it
        ran), then one split into the heads' attentions (each slice is an op of its own, and
        at batch 1 ops are the cost)."""
        squeeze_w, squeeze_b, heads_w, heads_b = self.folded_weights(x)
        gates = self._gates
        logits = compiled_attention.branch_logits(x, squeeze_w, squeeze_b, heads_w, heads_b, gates)
        set_on_change(self, "compiled", logits is not None)
        kernel_head = gates < heads_w.shape[0]
        if logits is None:
            z = F.linear(x.mean((2, 3)), squeeze_w, squeeze_b).relu_()
            logits = F.linear(z, heads_w, heads_b)
            (logits[:, :gates] if kernel_head else logits).sigmoid_()
        parts = [*logits.split_with_sizes(self._split, 1), None]
        if kernel_head:
            parts[-2] = torch.softmax(parts[-2], dim=1)
        return tuple(parts[i] for i in self._take)

    def reference(self, x: Tensor) -> Attentions:
        """The naive route, the branch as the released code draws it: GAP, 1x1 conv, BN,
        ReLU, and each head its own 1x1 conv on the 1x1 map."""
        z = self.relu(self.bn(self.fc(F.adaptive_avg_pool2d(x, 1))))
        t = self.temperature

        def head(fc: nn.Conv2d | None) -> Tensor | None:
            return None if fc is None else torch.sigmoid(fc(z).flatten(1) / t)

        kernel = None
        if self.kernel_fc is not None:
            kernel = torch.softmax(self.kernel_fc(z).flatten(1) / t, dim=1)
        return head(self.channel_fc), head(self.filter_fc), head(self.spatial_fc), kernel

    def heads(self) -> tuple[nn.Conv2d | None, ...]:
        """The heads in the order their attentions are returned; None where left out."""
        return self.channel_fc, self.filter_fc, self.spatial_fc, self.kernel_fc

    def madds(self) -> int:
        """Multiply-adds of the branch's 1x1 convs on the pooled vector (per image)."""
        return self.fc.in_channels * self.hidden + sum(
            self.hidden * h.out_channels for h in self.heads() if h is not None
        )
