"""Published speed versus measured: the papers' speed claims beside our timings.

The papers time on other hardware (a Xeon E5-2683 v3 and a TITAN X for ODConv,
a single EPYC 7551P core for DCD, a P100 for the DY-Conv reproduction's
training runs), so absolute figures are shown but only the
*ratio to the static baseline* is compared: how much slower the paper found the
dynamic model, against how much slower it is here. The paper's ratio comes
from its own baseline row in the same table (baseline speed / model speed for
images per second, model time / baseline time for milliseconds); ours is the
latency suite's ratio, with its 95% interval, or the throughput suite's.
"""

from __future__ import annotations

import re

import pandas as pd

from dynbench.published import load_published
from dynbench.report.data import GPU_METRIC, ci95_bounds, ci95_text, detail, family_of, latest
from dynbench.report.quality import ratio_quality, throughput_quality
from dynbench.results.details import DETAILS, GpuDetail, RatioDetail, TimingDetail


def minutes(text: str) -> float | None:
    """'53 mins' -> 53, 'approximately 13 hours' -> 780; None for a range or no unit."""
    match = re.fullmatch(r"(?:approximately |about )?([\d.]+) ?(min|mins|minutes|h|hours?)", text)
    if match is None:
        return None
    value = float(match.group(1))
    return value * 60 if match.group(2).startswith("h") else value


# published column -> (parser, unit shown ("": the text as printed), measured metric,
# measured ratio metric, higher is faster). Training times are whole runs in the papers and
# one step per image here: only their ratios compare.
SPEED_COLUMNS = {
    "cpu_img_s": (float, "img/s", "cpu_images_per_s", "latency_ratio", True),
    "cpu_ms": (float, "ms", "latency_ms", "latency_ratio", False),
    "gpu_img_s": (float, "img/s", GPU_METRIC, None, True),
    "train_time": (minutes, "", "train_step_ms_per_image", "train_step_ratio", False),
}
NOISY = "inconclusive (noisy)"  # see dynbench.report.quality: no verdict from such a timing
GPU_TOLERANCE = 0.05  # no CI for the throughput ratio: within 5% counts as "as printed"


def _verdict(published: float, measured: float, low: float | None, high: float | None) -> str:
    """Is the paper's slowdown inside our interval, or is the model costlier or cheaper here?"""
    if low is None or high is None:
        low, high = measured * (1 - GPU_TOLERANCE), measured * (1 + GPU_TOLERANCE)
    if low <= published <= high:
        return "as printed"
    return "costlier here" if measured > published else "cheaper here"


def compare_published_speed(measurements: pd.DataFrame) -> pd.DataFrame:
    """One row per published speed figure whose model was timed in ``measurements``."""
    values = latest(measurements)
    if values.empty:
        return pd.DataFrame()
    measured = {(r.model, r.metric): r for r in values.itertuples(index=False)}
    published = load_published()
    rows = []
    for column, (parse, unit, metric, ratio_metric, faster_is_higher) in SPEED_COLUMNS.items():
        printed = published[(published[column] != "") & (published["model"] != "")]
        for pub in printed.itertuples(index=False):
            ours = measured.get((pub.model, metric))
            if ours is None:
                continue
            baseline = family_of(pub.model)[0]
            base_pub = printed[
                (printed["source"] == pub.source)
                & (printed["table"] == pub.table)
                & (printed["model"] == baseline)
            ]
            base_ours = measured.get((baseline, metric))
            if base_pub.empty or base_ours is None:
                continue
            value, base_value = parse(getattr(pub, column)), parse(base_pub[column].iloc[0])
            if value is None or base_value is None:
                continue
            pub_ratio = base_value / value if faster_is_higher else value / base_value
            low = high = None
            noisy = False
            if pub.model == baseline:
                our_ratio = 1.0
            elif ratio_metric is not None and (pub.model, ratio_metric) in measured:
                ratio = measured[(pub.model, ratio_metric)]
                our_ratio = ratio.value
                low, high = ci95_bounds(ratio)
                # the two models' time records' noise; an images/s record is derived from a
                # latency and carries no rounds, so those rows rest on the interval alone
                timed = [r for r in (ours, base_ours) if DETAILS[r.metric] is TimingDetail]
                times = [detail(r, TimingDetail) for r in timed]
                # this run's own quality; the scorecard weighs every run (evidence.settle)
                noisy = ratio_quality(ratio.value, detail(ratio, RatioDetail), times, metric).noisy
            else:
                our_value, our_base = ours.value, base_ours.value
                our_ratio = our_base / our_value if faster_is_higher else our_value / our_base
                if metric == GPU_METRIC:
                    gpus = [detail(r, GpuDetail) for r in (ours, base_ours)]
                    noisy = throughput_quality(gpus).noisy
            rows.append(
                {
                    "source": pub.source[:3],
                    "table": pub.table,
                    "model": pub.model,
                    "hardware": pub.hardware,
                    "printed": f"{value:g} {unit}" if unit else getattr(pub, column),
                    "printed_ratio": round(pub_ratio, 3),
                    "measured": f"{ours.value:.4g} {ours.unit}",
                    "measured_ratio": round(our_ratio, 3),
                    "ci95": ci95_text(low, high),
                    "verdict": "baseline"
                    if pub.model == baseline
                    else NOISY
                    if noisy
                    else _verdict(pub_ratio, our_ratio, low, high),
                }
            )
    return pd.DataFrame(rows)
