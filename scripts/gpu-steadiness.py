#!/usr/bin/env python3
"""Whether a store's GPU throughput runs are steady enough to be findings (issue 29).

Reads every ``gpu_images_per_s`` record of one dtype and layout (fp32, contiguous by
default) and prints first the answer: which models had every run's timed blocks within
``--tolerance`` of each other (spread = (slowest - fastest) / median block) and their last
two runs within ``--tolerance`` of each other; then one row per model and run with what
explains a spread where the records carry it: warm-up blocks and whether they settled, the
allocator's retries and cudaMalloc / cudaFree calls summed over the timed blocks, host
syncs in one forward, and the SM clock and temperature before and after.

    python scripts/gpu-steadiness.py reports/gpu/gpu.sqlite
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from dynbench.report.data import field_dict
from dynbench.results.store import ResultStore


def _sum(blocks: list[dict], key: str) -> str:
    values = [b[key] for b in blocks if key in b]
    return str(sum(values)) if values else "-"


def _state(detail: dict, key: str, fmt: str) -> str:
    before, after = detail.get("gpu_before") or {}, detail.get("gpu_after") or {}
    if key not in before or key not in after:
        return "-"
    return f"{before[key]:{fmt}} -> {after[key]:{fmt}}"


def runs_of(frame: pd.DataFrame, dtype: str, channels_last: bool) -> pd.DataFrame:
    """The throughput records of ``dtype`` and layout, one row per (model, run), in order."""
    rows = frame[frame["metric"] == "gpu_images_per_s"].copy()
    settings = rows["settings"].map(field_dict)
    keep = [
        s.get("dtype", "fp32") == dtype and bool(s.get("channels_last")) == channels_last
        for s in settings
    ]
    rows = rows[keep].sort_values("measured_at", kind="stable")
    rows["detail"] = rows["detail"].map(field_dict)
    return rows


def verdicts(rows: pd.DataFrame, tolerance: float) -> dict[str, str]:
    """Per model: ``steady``, or why not."""
    out = {}
    for model, group in rows.groupby("model", sort=False):
        spreads = [d.get("spread") for d in group["detail"]]
        values = list(group["value"])
        if any(v is None or pd.isna(v) for v in values):
            out[model] = "OOM or failed in a run"
        elif any(s is None or s > tolerance for s in spreads):
            worst = max(s for s in spreads if s is not None)
            out[model] = f"blocks spread {worst:.1%}"
        elif len(values) < 2:
            out[model] = "one run only"
        elif abs(values[-1] - values[-2]) > tolerance * min(values[-2:]):
            out[model] = f"last two runs {abs(values[-1] / values[-2] - 1):.1%} apart"
        else:
            out[model] = "steady"
    return out


def table(rows: pd.DataFrame) -> str:
    lines = [
        "| model | run | images/s | spread | warm-up blocks | alloc retries | cudaMalloc | "
        "cudaFree | host syncs | SM MHz | °C |",
        "| --- " * 11 + "|",
    ]
    for model, group in rows.groupby("model", sort=False):
        for i, (value, detail) in enumerate(zip(group["value"], group["detail"], strict=True), 1):
            blocks = detail.get("allocator") or []
            warm = detail.get("warmup_ms")
            steady = detail.get("steady")
            warmup = "-" if warm is None else f"{len(warm)}{'' if steady else ' (unsettled)'}"
            spread = detail.get("spread")
            lines.append(
                f"| {model} | {i} | {'OOM' if pd.isna(value) else f'{value:,.0f}'} | "
                f"{'-' if spread is None else f'{spread:.1%}'} | {warmup} | "
                f"{_sum(blocks, 'num_alloc_retries')} | {_sum(blocks, 'num_device_alloc')} | "
                f"{_sum(blocks, 'num_device_free')} | {detail.get('host_syncs', '-')} | "
                f"{_state(detail, 'sm_clock_mhz', '.0f')} | "
                f"{_state(detail, 'temperature_c', '.0f')} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", help="a store with throughput-suite runs")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)
    try:
        with ResultStore(args.db, write=False) as store:
            frame = store.frame()
    except Exception as exc:  # a missing or unreadable store: one line, exit 2
        print(f"error: cannot read {args.db}: {exc}", file=sys.stderr)
        return 2
    rows = runs_of(frame, args.dtype, args.channels_last)
    if rows.empty:
        print(f"error: no {args.dtype} gpu_images_per_s records in {args.db}", file=sys.stderr)
        return 2
    found = verdicts(rows, args.tolerance)
    steady = [m for m, v in found.items() if v == "steady"]
    print(
        f"{len(steady)} of {len(found)} models steady (every block spread <= "
        f"{args.tolerance:.0%}, last two runs within {args.tolerance:.0%})"
    )
    for model, verdict in found.items():
        if verdict != "steady":
            print(f"  {model}: {verdict}")
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
