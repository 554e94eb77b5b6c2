"""DCD with joint fusion of channels and kernel elements (Eq. 9): the fast batched kernel
equals the naive mode products, the residual has Eq. 9's structure, exact sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dynbench.measure.params import count_params
from dynbench.measure.shape_counters import conv2d_madds
from dynbench.models import create_model
from dynbench.ops.base import set_impl
from dynbench.ops.dcd_joint import DCDJointConv2d


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("stride", [1, 2])
def test_fast_equals_naive(batch, stride):
    torch.manual_seed(batch + stride)
    conv = DCDJointConv2d(16, 24, 3, stride, 1, pool_size=2).eval()
    x = torch.randn(batch, 16, 9, 9)
    with torch.no_grad():
        fast = conv(x)
        conv.set_impl("naive")
        naive = conv(x)
    assert fast.shape == (batch, 24, 5 if stride == 2 else 9, 5 if stride == 2 else 9)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)


def test_paper_defaults_and_sizes():
    conv = DCDJointConv2d(64, 64, 3, 1, 1, pool_size=2)
    # L_k = floor(9 / 2) = 4; C / L_k = 16 -> L = 16 / 2^2 = 4; L^2 L_k <= C
    assert (conv.kernel_latent, conv.latent_dim) == (4, 4)
    assert conv.q.shape == (64, 4) and conv.r.shape == (9, 4) and conv.fc_phi.shape[0] == 64


def test_centre_basis_is_channel_fusion_alone():
    """With L_k = 1 and R the one-hot centre, the residual lives on the centre tap only."""
    conv = DCDJointConv2d(8, 12, 3, 1, 1, kernel_latent=1).eval()
    with torch.no_grad():
        conv.r.zero_()
        conv.r[4, 0] = 1.0
        conv.weight.zero_()
        x = torch.randn(2, 8, 6, 6)
        phi, _ = conv._branch(x)
        out = conv(x)
    residual = torch.einsum("nab,ia,ob->noi", phi[..., 0], conv.q, conv.p)
    expected = torch.stack(
        [F.conv2d(x[n : n + 1], residual[n][..., None, None])[0] for n in range(2)]
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_analytic_conv_part_is_the_static_conv():
    conv = DCDJointConv2d(16, 32, 3, 2, 1).eval()
    x = torch.randn(1, 16, 10, 10)
    out = conv(x)
    parts = conv.analytic_madds(tuple(x.shape), tuple(out.shape))
    assert parts["conv"] == conv2d_madds(conv.weight.shape, out.shape)
    assert parts["aggregation"] > 0 and parts["feature_scale"] == 0


def test_resnet18_joint_model():
    model = create_model("resnet18_dcd_joint").eval()
    assert count_params(model)["params"] == 13_907_688  # no printed figure (Sec. 5.2: top-1 only)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        set_impl(model, "fast")
        fast = model(x)
        set_impl(model, "naive")
        naive = model(x)
    torch.testing.assert_close(fast, naive, rtol=1e-4, atol=1e-4)
