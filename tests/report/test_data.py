"""The newest record of each measurement, and the records a verdict may use."""

import pandas as pd
import pytest

from dynbench.report.data import detail, judged_setting, latest, papers_setting
from dynbench.report.render import build_report
from dynbench.results.details import RatioDetail, TimingDetail
from tests.report.stores import frame as stored
from tests.report.stores import latency as stores_latency
from tests.report.stores import on_machine, record


def test_latest_of_records_stored_at_the_same_instant_is_the_one_stored_last():
    # enough rows that pandas' default (unstable) sort reorders ties
    stamps = [f"2026-11-30T07:00:0{i % 6}Z" for i in range(500)]
    frame = pd.DataFrame(
        {
            "model": ["m"] * 500,
            "metric": ["params"] * 500,
            "method": ["count"] * 500,
            "value": [float(i) for i in range(500)],
            "measured_at": stamps,
        }
    )
    newest = latest(frame)
    # the last row with the newest stamp (…05Z) is row 497
    assert newest["value"].tolist() == [497.0]


def test_gpu_throughput_in_another_dtype_or_layout_judges_no_claim():
    def gpu(model, value, **settings):
        where = {"device": "cuda", "batch": 200, **settings}
        made = record(model, "gpu_images_per_s", value, "cuda_events", {"spread": 0.01}, where)
        return on_machine([made], {"gpu": "test GPU"})

    fp32 = [*gpu("resnet50_v1", 7500.0, dtype="fp32"), *gpu("resnet50_v1_dcd", 3750.0)]
    bf16 = [
        *gpu("resnet50_v1", 15700.0, dtype="bf16", channels_last=True),
        *gpu("resnet50_v1_dcd", 4850.0, dtype="bf16", channels_last=True),
    ]
    autocast = gpu("resnet50_v1", 9000.0, dtype="fp32", amp="bf16")
    frame = stored(fp32 + bf16 + autocast)
    assert len(papers_setting(frame)) == 5  # plots still show every throughput
    assert judged_setting(frame)["value"].tolist() == [7500.0, 3750.0]

    claim = "DCD on ResNet-50: speed table"
    for rows, verdict in ((fp32, "does not hold"), (bf16, "not measured")):
        card = build_report(stored(rows)).card
        row = card[card["Claim"].str.startswith(claim)].iloc[0]
        assert row["Verdict"] == verdict, (rows, row["Why"])
    claims = next(s for s in build_report(stored(bf16)).sections if s.id == "claims")
    texts = [b.text for b in claims.blocks]
    set_aside = "2 record(s) taken in another setting than the papers' (GPU throughput in another"
    assert any(t.startswith(set_aside) for t in texts)


def test_records_at_another_input_size_judge_no_claim():
    """A short run at 64x64 (as the wheel check makes) times a smaller problem than the
    papers' 224x224: shown, never judged."""

    def latency(model, metric, value, **settings):
        detail = {"ci95_low": value * 0.99, "ci95_high": value * 1.01} if "ratio" in metric else {}
        where = {"batch": 1, **settings}
        made = record(model, metric, value, "torch.utils.benchmark", detail, where, "r")
        return on_machine([made], {"cpu": "test CPU"})[0]

    small = [
        latency("resnet18", "latency_ms", 4.0, input_size=[3, 64, 64]),
        latency("resnet18_odconv_1x", "latency_ms", 3.0, input_size=[3, 64, 64]),
        latency("resnet18_odconv_1x", "latency_ratio", 0.75, input_size=[3, 64, 64]),
    ]
    own = [latency("resnet18_odconv_1x", "latency_ratio", 1.3, input_size=[3, 224, 224])]
    frame = stored(small + own)
    assert len(papers_setting(frame)) == 4
    assert judged_setting(frame)["value"].tolist() == [1.3]
    claim = "ODConv (1×) on ResNet-18: negligible cost"
    row = build_report(stored(small)).card
    row = row[row["Claim"].str.startswith(claim)].iloc[0]
    assert row["Verdict"] == "not measured", row["Why"]


def test_the_report_reads_a_detail_as_its_metric_type_and_refuses_another():
    rows = stored(stores_latency("resnet18_dyconv_4x", 50.0, ratio=1.25, low=1.2, high=1.3))
    time, ratio = rows.itertuples(index=False)
    assert detail(time, TimingDetail).iqr_over_median == 0.04
    assert detail(ratio, RatioDetail).baseline == "resnet18"
    with pytest.raises(TypeError, match="latency_ms record's detail is TimingDetail"):
        detail(time, RatioDetail)
