"""Time the two routes of a kernel-mixing conv on the late-layer shapes of the registered
models, to place the crossover that dynbench.ops.experts_route.experts_pay encodes.

For each shape (C_in, C_out, k, stride, input side), K in {4, 8} and batch 2-64, a DY-Conv
layer's mixed_conv (attention excluded: both routes share it) runs on the mixed and on the
experts route, alternately, five times; each time is the median of a few calls. The ratio
experts / mixed is the median of the five pairs (spread: max - min of them).

    flock /tmp/dynbench-cpu.lock .venv/bin/python scripts/experts-crossover.py > routes.jsonl
    .venv/bin/python scripts/experts-crossover.py --render routes.jsonl > routes.md

``--allocator pinned`` keeps freed memory mapped, as the batch-sweep suite now times.
``--device cuda`` times the routes on the GPU instead (each call between CUDA events), at
``--batches`` (e.g. 1,8,32,64,128,200: where per-sample kernels at batch 200 may be what
makes the GPU slow, issue 29); the rows say their device, and the table marks the CPU
rule's choice on CPU rows only (the rule applies on the CPU alone).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import pandas as pd
import torch

from dynbench.measure.allocator import ALLOCATORS, pin
from dynbench.measure.gpu import cuda_event_timer
from dynbench.ops.dyconv import DynamicConv2d
from dynbench.ops.experts_route import experts_pay

# (C_in, C_out, k, stride, input side): ResNet-18's and MobileNetV2's late layers, and
# earlier ones as controls
SHAPES = [
    (512, 512, 3, 1, 7),
    (256, 512, 3, 2, 14),
    (256, 256, 3, 1, 14),
    (128, 128, 3, 1, 28),
    (960, 320, 1, 1, 7),
    (320, 1280, 1, 1, 7),
    (160, 960, 1, 1, 7),
    (576, 160, 1, 1, 7),
    (256, 512, 1, 2, 14),
    (384, 96, 1, 1, 14),
    (64, 64, 3, 1, 56),
]
BATCHES = (2, 4, 8, 16, 32, 64)
PAIRS = 5


def _median_time(fn, calls: int, device: str = "cpu") -> float:
    """Seconds of one call of ``fn``, the median of ``calls`` (CUDA events on a GPU)."""
    fn()
    times = []
    for _ in range(calls):
        if device.startswith("cuda"):
            times.append(cuda_event_timer(fn, 1) / 1e3)
            continue
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(threads: int, device: str = "cpu", batches: tuple[int, ...] = BATCHES) -> None:
    torch.set_num_threads(threads)
    for cin, cout, k, stride, side in SHAPES:
        for kernels in (4, 8):
            layer = DynamicConv2d(cin, cout, k, stride, k // 2, num_kernels=kernels)
            layer = layer.eval().to(device)
            for batch in batches:
                x = torch.randn(batch, cin, side, side, device=device)
                coefficients = torch.softmax(torch.randn(batch, kernels, device=device), 1)

                def run(experts: bool, layer=layer, x=x, coefficients=coefficients):
                    layer.experts = experts
                    with torch.inference_mode():
                        return layer.mixed_conv(x, coefficients)

                heavy = batch * cin * cout * k * k * side * side > 5e9
                calls = 3 if heavy else 7
                mixed, experts = [], []
                for _ in range(PAIRS):
                    mixed.append(_median_time(lambda: run(False), calls, device))
                    experts.append(_median_time(lambda: run(True), calls, device))
                ratios = [e / m for e, m in zip(experts, mixed, strict=True)]
                row = {
                    "device": device,
                    "cin": cin, "cout": cout, "k": k, "s": stride,
                    "p": ((side - 1) // stride + 1) ** 2, "n": kernels, "b": batch,
                    "mixed_ms": round(statistics.median(mixed) * 1e3, 3),
                    "experts_ms": round(statistics.median(experts) * 1e3, 3),
                    "ratio": round(statistics.median(ratios), 3),
                    "spread": round(max(ratios) - min(ratios), 3),
                }  # fmt: skip
                print(json.dumps(row), flush=True)


def render(path: str) -> None:
    """A markdown table: experts / mixed by batch, '*' where experts_pay picks experts."""
    rows = pd.read_json(path, lines=True)
    if "device" not in rows:  # a run from before rows said their device
        rows["device"] = "cpu"
    rows["cell"] = [
        f"{r.ratio:.2f}"
        + (
            "*"
            if r.device == "cpu"
            and experts_pay(r.b, r.n, r.p, r.cout * r.cin * r.k * r.k, r.cin * r.k * r.k)
            else ""
        )
        for r in rows.itertuples()
    ]
    rows["shape"] = [
        f"{r.cin}->{r.cout} {r.k}x{r.k}/{r.s}, {r.p} positions, K={r.n}"
        + ("" if r.device == "cpu" else f" ({r.device})")
        for r in rows.itertuples()
    ]
    table = rows.pivot_table(index="shape", columns="b", values="cell", aggfunc="first", sort=False)
    table.columns = [f"B={b}" for b in table.columns]
    print(table.fillna("").to_markdown())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--render", metavar="JSONL", help="print the markdown table of a run")
    parser.add_argument(
        "--allocator",
        choices=ALLOCATORS,
        default="system",
        help="pinned: keep freed memory mapped, as the batch-sweep suite times (measure.allocator)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to time the GPU")
    parser.add_argument(
        "--batches",
        default=",".join(map(str, BATCHES)),
        help="comma-separated batch sizes",
    )
    args = parser.parse_args()
    try:
        batches = tuple(int(b) for b in args.batches.split(","))
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        print(
            f"error: --batches {args.batches!r}: give whole numbers >= 1, e.g. 1,8,200",
            file=sys.stderr,
        )
        sys.exit(2)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device here", file=sys.stderr)
        sys.exit(2)
    if args.render:
        render(args.render)
        return
    if args.allocator == "pinned" and pin() != "pinned":
        sys.exit("--allocator pinned: this C library's allocator cannot be pinned")
    measure(args.threads, args.device, batches)


if __name__ == "__main__":
    sys.exit(main())
