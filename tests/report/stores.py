"""Constructed stores for report tests: known values in, known verdicts out."""

from __future__ import annotations

import json

import pandas as pd

ENVIRONMENT = json.dumps({"cpu": "test CPU", "threads": 1, "torch": "2.x"})


def record(model, metric, value, method, detail=None, settings=None, run_id="run1", unit=""):
    return {
        "run_id": run_id,
        "suite": "test",
        "model": model,
        "metric": metric,
        "value": value,
        "unit": unit,
        "method": method,
        "settings": json.dumps(settings or {}),
        "detail": json.dumps(detail or {}),
        "environment": ENVIRONMENT,
        "measured_at": "2026-11-29T00:00:00Z",
    }


def sizes(model, params, conv_linear, analytic, weight_bytes):
    return [
        record(model, "params", params, "count", unit="params"),
        record(model, "params_no_classifier", params, "count", unit="params"),
        record(model, "madds", conv_linear, "conv_linear", unit="MAdds"),
        record(model, "madds", analytic, "analytic", unit="MAdds"),
        record(model, "weight_bytes_per_image", weight_bytes, "analytic", unit="bytes"),
    ]


def latency(model, ms, iqr=0.04, faults=0.5, ratio=None, low=None, high=None, run_id="run1"):
    method = "torch.utils.benchmark"
    detail = {
        "iqr_over_median": iqr,
        "minor_faults_per_call": faults,
        "noisy": iqr > 0.1 or faults > 50,
        "load_before": 1.0,
        "load_after": 1.0,
        "rounds": 150,
    }
    rows = [record(model, "latency_ms", ms, method, detail, {"impl": "fast"}, run_id, "ms")]
    if ratio is not None:
        ratio_detail = {"baseline": "resnet18", "ci95_low": low, "ci95_high": high}
        rows.append(record(model, "latency_ratio", ratio, method, ratio_detail, {}, run_id))
    return rows


def frame(*groups: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for group in groups for row in group])


BASE = sizes("resnet18", 11_689_512, 1_814_073_344, 1_814_073_344, 46_758_048)
DYCONV = sizes("resnet18_dyconv_4x", 45_475_008, 1_815_000_000, 1_860_000_000, 181_900_032)
