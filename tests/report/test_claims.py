"""Verdicts of the scorecard, each reached on a constructed store."""

import pytest

from dynbench.report.claims import FAILS, HOLDS, MADDS_ONLY, NOISY, UNMEASURED, scorecard
from tests.report.stores import BASE, DYCONV, frame, latency, record, sizes


def verdict(store, model="resnet18_dyconv_4x", kind="cost"):
    card = scorecard(store)
    row = card[(card["model"] == model) & (card["kind"] == kind)].iloc[0]
    return row["Verdict"], row["Why"], row


def test_negligible_cost_holds_when_madds_and_time_stay_within_ten_percent():
    store = frame(BASE, DYCONV, latency("resnet18", 40.0), latency(
        "resnet18_dyconv_4x", 42.0, ratio=1.05, low=1.04, high=1.06))  # fmt: skip
    result, why, row = verdict(store)
    assert result == HOLDS
    assert "analytic MAdds +2.5%" in why and "latency +5.0%" in why
    assert row["Params ×"] == pytest.approx(45_475_008 / 11_689_512)
    assert row["Weight bytes ×"] == pytest.approx(181_900_032 / 46_758_048)
    assert row["CPU latency × [95% CI]"] == "1.050× [1.040, 1.060]"


def test_holds_for_madds_not_for_time():
    store = frame(BASE, DYCONV, latency("resnet18", 40.0), latency(
        "resnet18_dyconv_4x", 56.0, ratio=1.40, low=1.39, high=1.41))  # fmt: skip
    assert verdict(store)[0] == MADDS_ONLY


def test_does_not_hold_when_madds_grow_by_more_than_ten_percent():
    heavy = sizes("resnet18_dyconv_4x", 45_475_008, 1_815_000_000, 2_100_000_000, 1)
    result, why, _ = verdict(frame(BASE, heavy))
    assert result == FAILS and "+15.8%" in why


@pytest.mark.parametrize(
    "variant, reason",
    [
        (dict(iqr=0.25), "IQR 25% of the median"),
        (dict(faults=900.0), "900 page faults per call"),
        (dict(low=1.30, high=1.52), "wider than ±3%"),
        (dict(low=None, high=None), "no 95% interval"),
    ],
)
def test_a_noisy_timing_gives_no_verdict(variant, reason):
    timing = {"ratio": 1.40, "low": 1.39, "high": 1.41, **variant}
    store = frame(BASE, DYCONV, latency("resnet18", 40.0),
                  latency("resnet18_dyconv_4x", 56.0, **timing))  # fmt: skip
    result, why, _ = verdict(store)
    assert result == NOISY and reason in why


def test_two_runs_that_disagree_are_noisy():
    first = latency("resnet18_dyconv_4x", 56.0, ratio=1.40, low=1.39, high=1.41, run_id="a")
    second = latency("resnet18_dyconv_4x", 60.0, ratio=1.50, low=1.49, high=1.51, run_id="b")
    store = frame(BASE, DYCONV, latency("resnet18", 40.0), first, second)
    result, why, _ = verdict(store)
    assert result == NOISY and "runs disagree: 1.400 to 1.500" in why


def test_not_measured_names_the_suite_that_would_measure_it():
    result, why, _ = verdict(frame(BASE, DYCONV))
    assert result == UNMEASURED and "dynbench run --suite latency" in why
    result, why, _ = verdict(frame(BASE), model="resnet18_dcd", kind="compact")
    assert result == UNMEASURED and "--suite published" in why
    assert verdict(frame(BASE), model="resnet50_dynconv", kind="spatial")[0] == UNMEASURED


def test_compactness_is_a_parameter_fraction():
    dcd = sizes("resnet18_dcd", 14_703_332, 1, 1, 1)
    result, why, _ = verdict(frame(DYCONV, dcd), model="resnet18_dcd", kind="compact")
    assert result == HOLDS and "32% of the parameters here (printed 33%)" in why
    bloated = sizes("resnet18_dcd", 30_000_000, 1, 1, 1)
    assert verdict(frame(DYCONV, bloated), model="resnet18_dcd", kind="compact")[0] == FAILS


def _spatial(ratio, low, high, density=0.25, iqr=0.03):
    where = {"density": density, "mask": "blob"}
    method = "torch.utils.benchmark"
    timing = {"iqr_over_median": iqr, "minor_faults_per_call": 0.1, "rounds": 40}
    rows = [
        record("resnet50_dynconv", "spatial_latency_ms", 90.0, method, timing,
               {**where, "execution": "dense"}),
        record("resnet50_dynconv", "spatial_latency_ms", 90.0 * ratio, method, timing,
               {**where, "execution": "sparse", "impl": "sparse"}),
        record("resnet50_dynconv", "spatial_latency_ratio", ratio, method,
               {"ci95_low": low, "ci95_high": high}, {**where, "execution": "sparse"}),
    ]  # fmt: skip
    return frame(rows)


def test_spatial_speed_up_claim():
    result, why, _ = verdict(_spatial(0.45, 0.44, 0.46), "resnet50_dynconv", "spatial")
    assert result == HOLDS and "sparse 0.450× [0.440, 0.460] of dense at density 0.25" in why
    assert verdict(_spatial(0.80, 0.79, 0.81), "resnet50_dynconv", "spatial")[0] == FAILS
    noisy = verdict(_spatial(0.45, 0.40, 0.52), "resnet50_dynconv", "spatial")
    assert noisy[0] == NOISY and "wider than ±3%" in noisy[1]
    # printed 0.5x, limit 0.525x: [0.515, 0.53] neither clears it nor lies above it
    straddle = verdict(_spatial(0.52, 0.515, 0.53), "resnet50_dynconv", "spatial")
    assert straddle[0] == NOISY and "straddles the printed ratio" in straddle[1]
    for density in (0.0, 1.0):  # nothing skipped, or nothing computed: no spatial speed-up
        edge = verdict(_spatial(0.45, 0.44, 0.46, density), "resnet50_dynconv", "spatial")
        assert edge[0] == UNMEASURED


def _throughput(model, images_per_s, spread, run_id="run1"):
    detail = {"gpu": "test GPU", "block_ms": [1.0] * 5, "spread": spread}
    return [record(model, "gpu_images_per_s", images_per_s, "cuda_events", detail, run_id=run_id)]


@pytest.mark.parametrize(
    "images_per_s, spread, expected, reason",
    [
        (420.0, 0.01, HOLDS, "GPU throughput 0.64× vs printed 0.65×"),
        (350.0, 0.01, FAILS, "GPU throughput 0.54× vs printed 0.65×"),
        (350.0, 0.30, NOISY, "timed blocks spread 30%, too noisy for a verdict"),
    ],
)
def test_gpu_throughput_verdict_needs_steady_blocks(images_per_s, spread, expected, reason):
    """The ODConv speed claim (CondConv 8x on ResNet-50 at 0.65x the baseline's images/s)
    judged on GPU alone: within 5% of the printed ratio holds, below fails, and a
    throughput whose timed blocks spread over 10% gives no verdict."""
    store = frame(
        _throughput("resnet50_v1", 652.2, 0.01),
        _throughput("resnet50_v1_condconv_8x", images_per_s, spread),
    )
    result, why, row = verdict(store, model="resnet50_v1_condconv_8x", kind="speed")
    assert result == expected and reason in why
    assert row["GPU throughput ×"] == pytest.approx(images_per_s / 652.2)


def test_two_gpu_runs_that_disagree_give_no_verdict():
    """Both runs steady, both below the printed 0.65x, but 0.54x and 0.60x are 11% apart:
    the rule that stops two disagreeing CPU runs stops them on the GPU too."""
    steady = frame(
        _throughput("resnet50_v1", 652.2, 0.01, "run1"),
        _throughput("resnet50_v1_condconv_8x", 352.2, 0.01, "run1"),
        _throughput("resnet50_v1", 652.2, 0.01, "run2"),
        _throughput("resnet50_v1_condconv_8x", 391.3, 0.01, "run2"),
    )
    result, why, _ = verdict(steady, model="resnet50_v1_condconv_8x", kind="speed")
    assert result == NOISY and "runs disagree: 0.540 to 0.600" in why
    agreeing = frame(
        _throughput("resnet50_v1", 652.2, 0.01, "run1"),
        _throughput("resnet50_v1_condconv_8x", 352.2, 0.01, "run1"),
        _throughput("resnet50_v1", 650.0, 0.01, "run2"),
        _throughput("resnet50_v1_condconv_8x", 353.0, 0.01, "run2"),
    )
    assert verdict(agreeing, model="resnet50_v1_condconv_8x", kind="speed")[0] == FAILS
