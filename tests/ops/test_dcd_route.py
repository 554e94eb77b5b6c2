"""DCD's route choice: each eval route where the cost model says it is cheaper."""

from dynbench.ops.dcd import DCDConv2d


def test_auto_route_takes_each_route_where_it_is_cheaper():
    early = DCDConv2d(64, 64, 3, 1, 1, latent_dim=16, pool_size=2)
    late = DCDConv2d(512, 512, 3, 1, 1, latent_dim=45, pool_size=2)
    assert early.kernel_is_cheaper(1, 56, 56)
    assert not late.kernel_is_cheaper(1, 7, 7)
    assert not early.kernel_is_cheaper(1024, 56, 56)  # the kernels' buffer is capped
