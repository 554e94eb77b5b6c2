"""Each counter on single layers against the analytic multiply-add count."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from dynbench.measure.madds import count_madds
from dynbench.measure.shape_counters import conv2d_madds
from dynbench.models import create_model
from dynbench.results.names import COUNTERS


class Single(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


def test_conv2d_formula():
    # 64->128, 3x3, stride 2 on 56x56 -> 28x28 output: 128*28*28 * 64*9
    assert conv2d_madds((128, 64, 3, 3), (1, 128, 28, 28)) == 128 * 28 * 28 * 64 * 9


@pytest.mark.parametrize(
    "layer, x, expected",
    [
        (
            nn.Conv2d(64, 128, 3, 2, 1, bias=False),
            torch.randn(1, 64, 56, 56),
            128 * 28 * 28 * 64 * 9,
        ),
        (
            nn.Conv2d(64, 128, 3, 1, 1, groups=4, bias=False),
            torch.randn(1, 64, 14, 14),
            128 * 14 * 14 * 16 * 9,
        ),
        (
            nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False),
            torch.randn(1, 32, 28, 28),
            32 * 28 * 28 * 9,
        ),
        (nn.Linear(512, 1000, bias=False), torch.randn(1, 512), 512 * 1000),
    ],
    ids=["conv3x3", "grouped", "depthwise", "linear"],
)
def test_counters_agree_on_single_layers(layer, x, expected):
    result = count_madds(Single(layer), x)
    assert result.totals == {c: expected for c in COUNTERS}
    assert not result.disagree


def test_ptflops_counts_linear_bias_the_others_do_not():
    result = count_madds(Single(nn.Linear(512, 1000)), torch.randn(1, 512))
    assert result.totals["fvcore"] == result.totals["torch"] == 512 * 1000
    assert result.totals["ptflops"] == 512 * 1000 + 1000


def test_disagreement_is_flagged_with_its_cause():
    result = count_madds(create_model("mobilenetv2_100"), torch.randn(1, 3, 224, 224))
    assert result.totals["conv_linear"] == 300_774_272
    assert result.disagree  # fvcore also counts batch norm: +4.3%
    assert "batch_norm" in result.extra["fvcore"]
    assert "native_batch_norm" in result.skipped["torch"]
    assert "hardtanh_" in result.skipped["ptflops"]


def test_resnet_counters_agree_within_one_percent():
    result = count_madds(create_model("resnet18"), torch.randn(1, 3, 224, 224))
    assert result.totals["torch"] == result.totals["conv_linear"] == 1_814_073_344
    assert result.totals["ptflops"] == 1_814_073_344 + 1000  # fc bias
    assert not result.disagree


def test_a_failing_counter_is_recorded_and_the_others_still_count(monkeypatch):
    from dynbench.measure.madds import MADDS_COUNTERS

    def broken(model, x, ops):
        raise AssertionError("fvcore handle crashed")

    fvcore = replace(MADDS_COUNTERS["fvcore"], alone=broken)
    monkeypatch.setitem(MADDS_COUNTERS, "fvcore", fvcore)
    result = count_madds(Single(nn.Linear(4, 2, bias=False)), torch.randn(1, 4))
    assert result.totals["fvcore"] is None
    assert "fvcore handle crashed" in result.errors["fvcore"]
    assert result.totals["torch"] == result.totals["conv_linear"] == 8


@pytest.mark.parametrize(
    "name",
    [
        "resnet18_dcd",
        "mobilenetv2_100_dcd",
        "resnet18_condconv_8x",
        "resnet18_dyconv_4x",
        "mobilenetv2_100_odconv_4x",
        "resnet18_se",
    ],
)
def test_weight_reads_work_for_every_operator(name):
    from dynbench.measure.params import count_params
    from dynbench.measure.weights import weight_reads

    with torch.device("meta"):
        model = create_model(name)
    read, static = weight_reads(model)
    assert read == count_params(model)["params"]  # batch 1 reads every weight, all K kernels
    assert 0 < static <= read


@pytest.mark.parametrize(
    "name",
    [
        "resnet10_dcd",
        "resnet18_dcd_joint",
        "resnet18_condconv_8x",
        "resnet18_dyconv_4x",
        "resnet18_odconv_4x",
        "resnet18_dynconv",
        "resnet18_cbam",
        "mobilenetv2_050_dcd_pw_fusion",
    ],
)
def test_one_shared_forward_counts_as_each_counter_alone(monkeypatch, name):
    import dynbench.measure.madds as madds

    torch.manual_seed(0)
    model, x = create_model(name), torch.randn(1, 3, 96, 96)
    shared = count_madds(model, x)

    def broken(model, x, counters):
        raise RuntimeError("shared forward off")

    monkeypatch.setattr(madds, "shared_forward", broken)  # each counter on its own forward
    alone = count_madds(model, x)
    assert shared == alone
    assert not shared.errors and all(shared.totals.values())


def test_a_model_that_cannot_run_raises_as_itself():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("expected a 5-d input")

    with pytest.raises(ValueError, match="5-d input"):
        count_madds(Broken(), torch.randn(1, 4))


@pytest.mark.parametrize(
    "name", ["resnet18_dcd", "resnet18_odconv_4x", "mobilenetv2_050_dyconv_4x"]
)
def test_fvcore_traced_without_scopes_gives_the_whole_models_figures(name):
    from dynbench.measure.library_counters import fvcore_analysis, fvcore_madds

    torch.manual_seed(0)
    model, x = create_model(name).eval(), torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        model(x)
    with fvcore_analysis(model, x) as scoped:  # every module's scope, as fvcore traces
        total = int(scoped.total())
        by_operator = {op: int(n) for op, n in scoped.by_operator().items()}
        unsupported = dict(scoped.unsupported_ops())
        assert sum(1 for n in scoped.by_module().values() if n) > 1  # scopes were there
    with fvcore_analysis(model, x, by_module=False) as unscoped:
        assert int(unscoped.total()) == total
        assert {op: int(n) for op, n in unscoped.by_operator().items()} == by_operator
        assert dict(unscoped.unsupported_ops()) == unsupported
    assert fvcore_madds(model, x).total == total


@pytest.mark.parametrize("name", ["resnet18_dcd", "resnet18_odconv_4x", "resnet18_dynconv"])
def test_constant_sizes_count_what_fvcore_counts_on_its_own(name):
    from fvcore.nn import FlopCountAnalysis

    from dynbench.measure.library_counters import fvcore_madds

    torch.manual_seed(0)
    model, x = create_model(name).eval(), torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        model(x)
    own = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).tracer_warnings("none")
    counted = fvcore_madds(model, x)
    total, skipped, extra = counted.total, counted.skipped, counted.extra
    assert total == int(own.total())
    conv_linear = {"conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum"}
    expected = {op: int(n) for op, n in own.by_operator().items() if n and op not in conv_linear}
    assert expected and extra == expected  # every op fvcore counts beyond conv and linear
    unsupported = {k.removeprefix("aten::"): n for k, n in own.unsupported_ops().items()}
    assert all(n <= unsupported[op] for op, n in skipped.items())  # only size arithmetic gone


def test_a_first_dcd_call_counts_as_any_other():
    from dynbench.ops import dcd

    torch.manual_seed(0)
    model, x = create_model("resnet18_dcd"), torch.randn(1, 3, 96, 96)
    dcd._pooling_matrix.cache_clear()  # as in a fresh process
    first = count_madds(model, x)
    assert first == count_madds(model, x)


def test_cheaper_route_takes_each_dcd_layers_cheaper_placement():
    """The pointwise DCD of MobileNetV2 x0.5: on the feature maps its residual and Lambda
    cost 34.2M and 2.0M; each layer on its cheaper route, 6.4M and 0.22M."""
    result = count_madds(create_model("mobilenetv2_050_dcd_pw"), torch.zeros(1, 3, 224, 224))
    assert result.breakdown["aggregation"] == 34_150_256
    assert result.breakdown["feature_scale"] == 2_031_344
    assert result.cheaper_route == {"aggregation": 6_418_288, "feature_scale": 220_720}
    assert result.totals["analytic"] == sum(result.breakdown.values())
    static = count_madds(create_model("resnet18"), torch.zeros(1, 3, 224, 224), ("analytic",))
    assert static.cheaper_route == {"aggregation": 0, "feature_scale": 0}
