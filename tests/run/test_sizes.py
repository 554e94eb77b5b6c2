"""Size measures on models built with zero weights count exactly what real weights count."""

import pytest
import torch

from dynbench.measure.madds import count_madds
from dynbench.measure.params import count_params
from dynbench.measure.weights import weight_bytes
from dynbench.models import list_models, model_info
from dynbench.models.registry import zero_init

# one model of each operator (and each DCD switch family), at a small input
SAMPLE = [
    "resnet10_dcd",
    "resnet18_dcd_joint",
    "resnet18_condconv_8x",
    "resnet18_dyconv_4x",
    "resnet18_odconv_4x",
    "resnet18_dynconv",
    "resnet18_cbam",
    "mobilenetv2_050_dcd_pw_fusion",
    "resnet18_eca",
]


def _both_ways(name: str, size: tuple[int, int, int]):
    info = model_info(name)
    torch.manual_seed(0)
    real = info.builder().eval()
    with zero_init():
        zero = info.builder().eval()
    x = torch.randn(1, *size)
    return real, zero, x


@pytest.mark.parametrize("name", SAMPLE)
def test_a_model_built_with_zero_weights_counts_as_one_built_normally(name):
    real, zero, x = _both_ways(name, (3, 96, 96))
    assert count_params(zero) == count_params(real)
    assert weight_bytes(zero) == weight_bytes(real)
    assert [(n, b.shape) for n, b in zero.named_buffers()] == [
        (n, b.shape) for n, b in real.named_buffers()
    ]
    assert count_madds(zero, x) == count_madds(real, x)
    convs = [m.weight for m in zero.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(not w.any() for w in convs)  # the init really was replaced


def test_zero_init_restores_the_init_functions():
    before = torch.nn.init.kaiming_normal_
    with zero_init():
        assert torch.nn.init.kaiming_normal_ is not before
    assert torch.nn.init.kaiming_normal_ is before
    weight = torch.nn.Linear(8, 4).weight
    assert weight.any()


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models("*"))
def test_every_registered_model_counts_the_same_with_zero_weights(name):
    real, zero, x = _both_ways(name, model_info(name).input_size)
    assert count_madds(zero, x) == count_madds(real, x)


def test_size_suites_build_with_zero_weights_and_timing_suites_do_not():
    from dynbench.run.family import Target
    from dynbench.run.runner import _build
    from dynbench.run.steps import STEPS

    assert [m for m, step in STEPS.items() if step.zero_weights] == [
        "params",
        "madds",
        "resolution",
    ]
    target = Target(model_info("resnet10"))
    [(_, zero)] = _build([target], lambda record: None, zero_weights=True)
    [(_, real)] = _build([target], lambda record: None)
    assert not zero.conv1.weight.any() and real.conv1.weight.any()
