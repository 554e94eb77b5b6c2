"""Verdicts of the scorecard, each reached on a constructed store."""

import pytest

from dynbench.report.claims import scorecard
from dynbench.report.verdicts import (
    COUNTERS_DISAGREE,
    FAILS,
    HOLDS,
    MADDS_ONLY,
    NOISY,
    STRADDLES,
    UNMEASURED,
)
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
    assert "MAdds analytic +2.5% (printed +2.6%; analytic reproduces 'ResNet ImageNet'" in why
    assert "other counters: conv+FC +0.1%" in why
    assert "the one run at or below 1.10× (+10%) (run run1 1.050 (quiet))" in why
    assert row["Params ×"] == pytest.approx(45_475_008 / 11_689_512)
    assert row["Weight bytes ×"] == pytest.approx(181_900_032 / 46_758_048)
    assert row["CPU latency × [95% CI]"] == "1.050× [1.040, 1.060]"


def test_holds_for_madds_not_for_time():
    store = frame(BASE, DYCONV, latency("resnet18", 40.0), latency(
        "resnet18_dyconv_4x", 56.0, ratio=1.40, low=1.39, high=1.41))  # fmt: skip
    assert verdict(store)[0] == MADDS_ONLY


def test_does_not_hold_when_madds_grow_by_more_than_ten_percent():
    heavy = sizes("resnet18_dyconv_4x", 45_475_008, 2_050_000_000, 2_100_000_000, 1)
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
def test_a_noisy_timing_alone_gives_no_verdict(variant, reason):
    timing = {"ratio": 1.40, "low": 1.39, "high": 1.41, **variant}
    store = frame(BASE, DYCONV, latency("resnet18", 40.0),
                  latency("resnet18_dyconv_4x", 56.0, **timing))  # fmt: skip
    result, why, _ = verdict(store)
    assert result == NOISY and reason in why and "none is quiet" in why


def _runs(*timings):
    """The DY-Conv model's latency ratio in several runs: (ratio, low, high, iqr)."""
    rows = [latency("resnet18", 40.0, run_id=f"r{k}") for k in range(len(timings))]
    for k, (ratio, low, high, iqr) in enumerate(timings):
        rows.append(latency("resnet18_dyconv_4x", 40.0 * ratio, iqr, 0.5, ratio, low, high,
                            run_id=f"r{k}"))  # fmt: skip
    return frame(BASE, DYCONV, *rows)


def test_runs_that_differ_but_lie_on_one_side_decide():
    """1.40 and 1.50 differ by 7%, but both lie far above +10%: the data settles it."""
    result, why, _ = verdict(_runs((1.40, 1.39, 1.41, 0.04), (1.50, 1.49, 1.51, 0.04)))
    assert result == MADDS_ONLY
    assert "all 2 runs above 1.10× (+10%)" in why
    assert "run r0 1.400 (quiet); run r1 1.500 (quiet)" in why


def test_a_noisy_run_confirms_a_quiet_one_and_is_named():
    result, why, _ = verdict(_runs((1.40, 1.39, 1.41, 0.04), (1.45, 1.30, 1.60, 0.25)))
    assert result == MADDS_ONLY
    assert "run r1 1.450 (noisy: interval [1.300, 1.600] wider than ±3%; IQR 25%" in why


def test_every_run_noisy_on_one_side_stays_noisy():
    result, why, _ = verdict(_runs((1.40, 1.39, 1.41, 0.25), (1.45, 1.44, 1.46, 0.30)))
    assert result == NOISY and "every run above 1.10× (+10%), but none is quiet" in why


def test_an_interval_that_straddles_the_threshold_says_by_how_much():
    result, why, _ = verdict(_runs((1.40, 1.39, 1.41, 0.04), (1.11, 1.09, 1.12, 0.04)))
    assert result == STRADDLES
    assert "run r1 1.110 (quiet) straddles 1.10× (+10%): the evidence spans 1.090 to 1.410" in why


def test_runs_on_opposite_sides_straddle():
    result, why, _ = verdict(_runs((1.05, 1.04, 1.06, 0.04), (1.15, 1.14, 1.16, 0.04)))
    assert result == STRADDLES and "runs lie on both sides of 1.10×" in why


def _mobilenet(conv_linear_base, analytic_dcd):
    """MobileNetV2 x1.0 and its DCD variant; the ODConv paper prints 300.8M and 318.4M."""
    base = sizes("mobilenetv2_100", 3_504_872, conv_linear_base, 300_800_000, 1)
    dcd = sizes("mobilenetv2_100_dcd", 5_720_000, 302_600_000, analytic_dcd, 1)
    return frame(base, dcd)


def test_madds_are_judged_by_the_counter_that_reproduces_the_table():
    """conv+FC misses the baseline's printed 300.8M, analytic reproduces it: analytic's
    +33.7% decides, conv+FC's +4.3% is shown beside it, and the disagreement is said."""
    result, why, _ = verdict(_mobilenet(290_000_000, 402_200_000), "mobilenetv2_100_dcd")
    assert result == FAILS
    assert "MAdds analytic +33.7% (printed +5.8%; analytic reproduces 'MobileNetV2 ImageNet'" in why
    assert "other counters: conv+FC +4.3%" in why and "counters disagree on the side" in why


def test_reproducing_counters_that_disagree_on_the_side_give_no_verdict():
    result, why, row = verdict(_mobilenet(300_800_000, 402_200_000), "mobilenetv2_100_dcd")
    assert result == COUNTERS_DISAGREE
    assert "conv+FC, analytic reproduce 'MobileNetV2 ImageNet' (1 of 2 rows)" in why
    assert "the reproducing counters disagree on +10%" in why


def test_each_claim_shows_its_own_printed_figures():
    """DCD on MobileNetV2 x1.0 has a time claim (1.12x, DCD paper) and a speed-table claim
    (1.82x, ODConv paper): neither row shows the other's figure."""
    card = scorecard(frame(BASE))
    dcd = card[card["model"] == "mobilenetv2_100_dcd"].set_index("kind")
    assert dcd.loc["time", "Printed"] == "time 1.12×, MAdds +8.7%"
    assert dcd.loc["time", "Paper"] == "DCD"
    assert dcd.loc["speed", "Printed"] == "CPU 1.82×, GPU 0.60×"
    assert dcd.loc["speed", "Paper"] == "ODConv"
    assert dcd.loc["speed", "Claim"] == "DCD on MobileNetV2 ×1.0: speed table"


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
    return frame(_spatial_rows(ratio, low, high, density, iqr))


def _spatial_rows(ratio, low, high, density=0.25, iqr=0.03):
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
    return rows


def test_spatial_speed_up_claim():
    result, why, _ = verdict(_spatial(0.45, 0.44, 0.46), "resnet50_dynconv", "spatial")
    assert result == HOLDS and "sparse 0.450× [0.440, 0.460] of dense at density 0.25" in why
    assert verdict(_spatial(0.80, 0.79, 0.81), "resnet50_dynconv", "spatial")[0] == FAILS
    noisy = verdict(_spatial(0.45, 0.40, 0.52), "resnet50_dynconv", "spatial")
    assert noisy[0] == NOISY and "wider than ±3%" in noisy[1]
    # printed 0.5x, limit 0.525x: [0.515, 0.53] neither clears it nor lies above it
    straddle = verdict(_spatial(0.52, 0.515, 0.53), "resnet50_dynconv", "spatial")
    assert straddle[0] == STRADDLES and "straddles the printed ratio + 5% (0.525×)" in straddle[1]
    for density in (0.0, 1.0):  # nothing skipped, or nothing computed: no spatial speed-up
        edge = verdict(_spatial(0.45, 0.44, 0.46, density), "resnet50_dynconv", "spatial")
        assert edge[0] == UNMEASURED


def test_spatial_claim_not_failed_by_a_quiet_density_while_noisy_ones_may_hold():
    """A run in a noisy spell: density 0.5 quiet at 0.85x, density 0.25 noisy at 0.50x. The
    quiet point alone lies above the printed 0.5x + 5%, but the noisy one reaches below it:
    no verdict. With the noisy point above the limit too, the claim fails."""
    quiet = _spatial_rows(0.85, 0.84, 0.86, density=0.5)
    maybe = _spatial_rows(0.50, 0.48, 0.52, density=0.25, iqr=0.2)
    result, why, _ = verdict(frame(quiet, maybe), "resnet50_dynconv", "spatial")
    assert result == NOISY
    assert "reaches below the printed ratio + 5% (0.525×): 0.500× at density 0.25" in why
    assert "a quiet run would settle it" in why
    slow = _spatial_rows(0.70, 0.68, 0.72, density=0.25, iqr=0.2)
    assert verdict(frame(quiet, slow), "resnet50_dynconv", "spatial")[0] == FAILS


def _throughput(model, images_per_s, spread, run_id="run1"):
    detail = {"gpu": "test GPU", "block_ms": [1.0] * 5, "spread": spread}
    return [record(model, "gpu_images_per_s", images_per_s, "cuda_events", detail, run_id=run_id)]


@pytest.mark.parametrize(
    "images_per_s, spread, expected, reason",
    [
        (420.0, 0.01, HOLDS, "GPU throughput 0.644×: the one run at or above printed 0.65×"),
        (350.0, 0.01, FAILS, "GPU throughput 0.537×: the one run below printed 0.65×"),
        (350.0, 0.30, NOISY, "noisy: timed blocks spread 30%"),
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


def test_two_gpu_runs_both_below_the_printed_ratio_decide():
    """Both runs steady and both below the printed 0.65x: 0.54x and 0.60x are 11% apart,
    but on the same side, so the claim's GPU half does not hold."""
    steady = frame(
        _throughput("resnet50_v1", 652.2, 0.01, "run1"),
        _throughput("resnet50_v1_condconv_8x", 352.2, 0.01, "run1"),
        _throughput("resnet50_v1", 652.2, 0.01, "run2"),
        _throughput("resnet50_v1_condconv_8x", 391.3, 0.01, "run2"),
    )
    result, why, row = verdict(steady, model="resnet50_v1_condconv_8x", kind="speed")
    assert result == FAILS and "all 2 runs below printed 0.65× - 5% = 0.619×" in why
    assert row["GPU half"] == FAILS and row["CPU half"] == UNMEASURED


def test_a_speed_claim_combines_its_cpu_and_gpu_halves():
    cpu = [
        *latency("resnet50_v1", 40.0),
        *latency("resnet50_v1_condconv_8x", 56.0, ratio=1.40, low=1.39, high=1.41),
    ]
    store = frame(
        cpu,
        _throughput("resnet50_v1", 652.2, 0.01),
        _throughput("resnet50_v1_condconv_8x", 352.2, 0.01),
    )
    result, why, row = verdict(store, model="resnet50_v1_condconv_8x", kind="speed")
    assert (row["CPU half"], row["GPU half"], result) == (HOLDS, FAILS, FAILS)
    assert why.startswith("CPU: CPU latency 1.400× [1.390, 1.410]") and "GPU: GPU throughput" in why


def test_training_step_page_faults_are_part_of_its_cost_not_noise():
    """Known by the record's metric: a training step allocates its gradients each step."""
    method = "torch.utils.benchmark"
    timing = {"iqr_over_median": 0.04, "minor_faults_per_call": 900.0}
    ratio = {"baseline": "resnet18_cifar", "ci95_low": 5.35, "ci95_high": 5.45}
    store = frame([
        record("resnet18_cifar", "train_step_ms_per_image", 10.0, method, timing),
        record("resnet18_cifar_dyconv_4x", "train_step_ms_per_image", 54.0, method, timing),
        record("resnet18_cifar_dyconv_4x", "train_step_ratio", 5.4, method, ratio),
    ])  # fmt: skip
    result, why, _ = verdict(store, "resnet18_cifar_dyconv_4x", "train")
    assert result == FAILS and "the one run below the printed 14.7× (±5%)" in why
    assert "(quiet)" in why
