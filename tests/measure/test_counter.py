"""The counter table: every counter one entry, and a new entry counts through the madds suite."""

from collections import Counter

import pytest
import torch
from torch import nn

from dynbench.errors import DynbenchError
from dynbench.measure.counter import FLOPS_UNIT, Counted, MaddsCounter
from dynbench.measure.madds import MADDS_COUNTERS, count_madds
from dynbench.measure.shape_counters import conv2d_madds
from dynbench.models import create_model
from dynbench.models.registry import model_info
from dynbench.results.names import COUNTERS, MADDS_UNIT
from dynbench.run import sizes
from dynbench.run.settings import MaddsSettings
from dynbench.run.steps import STEPS

RESNET10_CONV_LINEAR = 889_229_312  # at 224 x 224 (tests/guard/test_guard.py)
RESNET10_FC = 512 * 1000


class ConvOnly:
    """A toy counter's part in the shared forward: MAdds of the Conv2d layers alone, from
    their shapes (the classifier is left out)."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.madds, self.handles = model, 0, []

    def __enter__(self) -> "ConvOnly":
        convs = [m for m in self.model.modules() if isinstance(m, nn.Conv2d)]
        self.handles = [conv.register_forward_hook(self.hook) for conv in convs]
        return self

    def hook(self, module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        self.madds += conv2d_madds(module.weight.shape, output.shape)

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()

    def read(self, ops: Counter[str]) -> Counted:
        return Counted(total=self.madds, skipped={})


def test_the_table_holds_every_counter_a_record_may_name_in_the_reports_order():
    assert tuple(MADDS_COUNTERS) == COUNTERS
    assert all(name == counter.name for name, counter in MADDS_COUNTERS.items())


def test_a_counter_added_to_the_table_is_reported_through_the_madds_suite(monkeypatch):
    settings = MaddsSettings(counters=["conv_only", "conv_linear"])
    with monkeypatch.context() as patch:
        patch.setitem(MADDS_COUNTERS, "conv_only", MaddsCounter("conv_only", join=ConvOnly))
        STEPS["madds"].validate({"counters": ["conv_only"]}, "suite")  # a suite may ask for it
        records = sizes.madds(model_info("resnet10"), create_model("resnet10"), settings)
    madds = {r.method: r for r in records if r.metric == "madds"}
    assert {method: r.value for method, r in madds.items()} == {
        "conv_only": RESNET10_CONV_LINEAR - RESNET10_FC,
        "conv_linear": RESNET10_CONV_LINEAR,
    }
    assert madds["conv_only"].unit == MADDS_UNIT
    assert madds["conv_only"].detail.skipped_ops == {} and madds["conv_only"].detail.error is None
    assert "conv_only" not in MADDS_COUNTERS  # unregistered again
    with pytest.raises(DynbenchError, match="unknown counter 'conv_only'"):
        STEPS["madds"].validate({"counters": ["conv_only"]}, "suite")
    with pytest.raises(ValueError, match="unknown MAdds counter.*'conv_only'"):
        count_madds(create_model("resnet10"), torch.randn(1, 3, 32, 32), ("conv_only",))


def test_a_counter_without_a_shared_part_counts_alone_and_flops_are_halved(monkeypatch):
    def flops(model: nn.Module, x: torch.Tensor, ops: Counter[str]) -> Counted:
        return Counted(total=2 * 4 * 3, skipped=dict(ops))

    counter = MaddsCounter("flops", alone=flops, unit=FLOPS_UNIT)
    monkeypatch.setitem(MADDS_COUNTERS, "flops", counter)
    result = count_madds(nn.Linear(4, 3, bias=False), torch.randn(1, 4), ("flops", "torch"))
    assert result.totals == {"flops": 4 * 3, "torch": 4 * 3}
    assert result.skipped["flops"] == {"mm": 1, "t": 1}  # the ops the forward called
