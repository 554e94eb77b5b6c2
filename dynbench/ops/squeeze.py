"""The start the kernel-mixing operators' attention branches share (DY-Conv, ODConv):
global pooling, then a 1x1 conv run as the matrix product it is on (B, C) vectors."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def conv1x1_on_vectors(z: Tensor, conv: nn.Conv2d) -> Tensor:
    """A 1x1 conv applied to (B, C) vectors as the matrix product it is on a 1x1 map:
    one ``F.linear`` with the conv's weight viewed as a matrix (and its bias)."""
    return F.linear(z, conv.weight.view(conv.out_channels, -1), conv.bias)


def squeeze(x: Tensor, fc: nn.Conv2d, bn: nn.BatchNorm2d | None) -> Tensor:
    """The attention branches' shared start on (B, C, H, W) input: global average pool,
    ``fc`` (a 1x1 conv) as a matrix product, ``bn`` (if any), ReLU; (B, hidden).

    The batch norm runs as the module in training (it updates its statistics) and as one
    functional call in eval. ``adaptive_avg_pool2d`` is the pooling op the MAdds counters
    know (fvcore would skip ``x.mean``).
    """
    b = x.shape[0]
    z = conv1x1_on_vectors(F.adaptive_avg_pool2d(x, 1).view(b, -1), fc)
    if bn is not None and bn.training:
        z = bn(z.view(b, -1, 1, 1)).view(b, -1)
    elif bn is not None:
        z = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return z.relu_()
