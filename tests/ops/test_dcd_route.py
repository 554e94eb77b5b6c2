"""DCD's route choice: each eval route where the cost model says it is cheaper, and, timed
on the layer shapes of the registered models, the route it picks is the faster one."""

from __future__ import annotations

import pytest
import torch
from torch.utils import benchmark

from dynbench.models import create_model
from dynbench.models.registry import model_info
from dynbench.ops.dcd import DCDConv2d

# How much slower than the other route the picked one may time: the rounds' noise, and
# shapes near the crossover where both routes cost about the same.
TOLERANCE = 1.25


def test_auto_route_takes_each_route_where_it_is_cheaper():
    early = DCDConv2d(64, 64, 3, 1, 1, latent_dim=16, pool_size=2)
    late = DCDConv2d(512, 512, 3, 1, 1, latent_dim=45, pool_size=2)
    assert early.kernel_is_cheaper(1, 56, 56)
    assert not late.kernel_is_cheaper(1, 7, 7)
    assert not early.kernel_is_cheaper(1024, 56, 56)  # the kernels' buffer is capped


def _distinct_layers(name: str) -> list[tuple[DCDConv2d, torch.Size]]:
    """Each DCD conv of a distinct shape in ``name`` (eval mode) and its input's shape at
    batch 1, as the model's forward feeds it."""
    model = create_model(name).eval()
    found: dict[tuple, tuple[DCDConv2d, torch.Size]] = {}

    def record(layer: DCDConv2d, inputs: tuple[torch.Tensor]) -> None:
        shape = inputs[0].shape
        key = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, shape)
        found.setdefault(key, (layer, shape))

    layers = [m for m in model.modules() if isinstance(m, DCDConv2d)]
    hooks = [layer.register_forward_pre_hook(record) for layer in layers]
    with torch.inference_mode():
        model(torch.randn(1, *model_info(name).input_size))
    for hook in hooks:
        hook.remove()
    return list(found.values())


def _route_ms(layer: DCDConv2d, x: torch.Tensor, fold: bool) -> float:
    """The median ms of one eval call on the route ``fold`` forces (one thread)."""
    layer.fold = fold

    def call() -> None:
        with torch.inference_mode():
            layer(x)

    timer = benchmark.Timer("call()", globals={"call": call}, num_threads=1)
    return timer.blocked_autorange(min_run_time=0.1).median * 1e3


@pytest.mark.slow
@pytest.mark.parametrize("model", ["resnet18_dcd", "mobilenetv2_100_dcd"])
def test_the_route_picked_is_the_faster_on_the_models_layers(model):
    """Both routes timed in turn, three rounds, the best of each kept; the route
    ``kernel_is_cheaper`` picks is at most TOLERANCE times the other's time."""
    torch.manual_seed(0)
    slower = []
    for layer, shape in _distinct_layers(model):
        x = torch.randn(shape)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(3):
            for fold in (True, False):
                times[fold].append(_route_ms(layer, x, fold))
        picked = layer.kernel_is_cheaper(shape[0], shape[2], shape[3])
        ratio = min(times[picked]) / min(times[not picked])
        if ratio > TOLERANCE:
            where = f"{layer.in_channels}->{layer.out_channels} k{layer.kernel_size}"
            slower.append(f"{where}/{layer.stride} at {tuple(shape[2:])}: {ratio:.2f}x")
    assert not slower, f"the picked route is the slower: {slower}"
