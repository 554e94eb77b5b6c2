"""The newest record of each measurement, and the records a verdict may use."""

import json

import pandas as pd

from dynbench.report.data import judged_setting, latest, papers_setting
from dynbench.report.render import build_report


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
        return {
            "run_id": "r",
            "suite": "throughput",
            "model": model,
            "metric": "gpu_images_per_s",
            "value": value,
            "unit": "images/s",
            "method": "cuda_events",
            "settings": json.dumps({"device": "cuda", "batch": 200, **settings}),
            "detail": json.dumps({"spread": 0.01}),
            "environment": json.dumps({"gpu": "test GPU"}),
            "measured_at": "2026-11-29T00:00:00Z",
        }

    fp32 = [gpu("resnet50_v1", 7500.0, dtype="fp32"), gpu("resnet50_v1_dcd", 3750.0)]
    bf16 = [
        gpu("resnet50_v1", 15700.0, dtype="bf16", channels_last=True),
        gpu("resnet50_v1_dcd", 4850.0, dtype="bf16", channels_last=True),
    ]
    autocast = [gpu("resnet50_v1", 9000.0, dtype="fp32", amp="bf16")]
    frame = pd.DataFrame(fp32 + bf16 + autocast)
    assert len(papers_setting(frame)) == 5  # plots still show every throughput
    assert judged_setting(frame)["value"].tolist() == [7500.0, 3750.0]

    claim = "DCD on ResNet-50: speed table"
    for rows, verdict in ((fp32, "does not hold"), (bf16, "not measured")):
        card = build_report(pd.DataFrame(rows)).card
        row = card[card["Claim"].str.startswith(claim)].iloc[0]
        assert row["Verdict"] == verdict, (rows, row["Why"])
    claims = next(s for s in build_report(pd.DataFrame(bf16)).sections if s.id == "claims")
    texts = [b.text for b in claims.blocks]
    assert any(t.startswith("2 GPU throughput record(s) taken in another dtype") for t in texts)
