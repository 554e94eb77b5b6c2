"""Which eval-mode route a DCD conv takes: form each sample's kernel, or apply the
low-rank residual to the feature maps (see :class:`dynbench.ops.dcd.DCDConv2d`).

A cost model in multiply-adds, with a per-element charge for the memory passes each
route adds; both routes compute the same function, so only speed depends on it.
"""

from __future__ import annotations

# Writing and re-reading one element of a per-sample kernel, and one extra pass over
# one output element (the residual and Lambda on the feature maps), in multiply-adds.
KERNEL_ELEMENT_COST = 16
FEATURE_ELEMENT_COST = 16
FOLD_MAX_KERNEL_ELEMENTS = 1 << 22  # per-layer buffer of per-sample kernels: 16 MiB in fp32


def kernel_is_cheaper(
    out_channels: int,
    in_channels: int,
    kernel_size: int,
    latent_dim: int,
    stride: int,
    batch: int,
    height: int,
    width: int,
) -> bool:
    """Whether forming W(x) beats applying the residual to the feature maps.

    Per sample, forming costs C_out C_in L (the residual matrix) plus writing and
    re-reading the k x k kernel; the feature-map route costs L (C_in + C_out) per
    output pixel plus passes over the output. Both scale with the batch; the
    kernels' buffer is capped.
    """
    cout, cin, k, latent = out_channels, in_channels, kernel_size, latent_dim
    if batch * cout * cin * k * k > FOLD_MAX_KERNEL_ELEMENTS:
        return False
    positions = ((height - 1) // stride + 1) * ((width - 1) // stride + 1)
    fold = cout * cin * (latent + KERNEL_ELEMENT_COST * k * k)
    low = positions * (latent * (cin + cout) + FEATURE_ELEMENT_COST * cout)
    return fold < low
