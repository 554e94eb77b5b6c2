#!/usr/bin/env python3
"""Profile an unsteady GPU throughput block by block (torch.profiler, CUDA activities).

For each model: the batch-``--batch`` forward is run ``--blocks`` blocks of ``--iterations``
calls under the profiler, in fp32 with cudnn.benchmark on (the throughput suite's
settings), and per block the CUDA runtime's cudaMalloc/cudaFree calls, host syncs,
device-to-host copies, kernel count and time and the allocator's counters are printed,
then the top kernels (``dynbench.measure.gpu_profile``). ``--memory-reserve-gib`` frees a
block of that size into the allocator's cache first, to see whether the counts go away.
Runs on the CPU too (CPU ops only, no CUDA counts), which is how it is tested.

    python scripts/gpu-profile.py --models mobilenetv2_100_condconv_8x --out prof.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import dynbench
from dynbench.measure.gpu import reserve_memory
from dynbench.measure.gpu_profile import markdown, profile_blocks
from dynbench.models.registry import find_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, help="comma-separated registry names")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=5, help="calls per block")
    parser.add_argument("--warmup", type=int, default=3, help="calls before the profile")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--input-size", default="3,224,224", help="C,H,W")
    parser.add_argument("--memory-reserve-gib", type=float, default=0.0)
    parser.add_argument("--out", type=Path, help="also write the tables here (and .json beside)")
    args = parser.parse_args(argv)
    names = args.models.split(",")
    unknown = [n for n in names if find_model(n) is None]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; see `dynbench list`", file=sys.stderr)
        return 2
    if min(args.batch, args.blocks, args.iterations) < 1 or args.warmup < 0:
        print("error: --batch, --blocks and --iterations must be >= 1", file=sys.stderr)
        return 2
    size = tuple(int(v) for v in args.input_size.split(","))
    cuda = args.device.startswith("cuda")
    torch.backends.cudnn.benchmark = True
    tables, summaries = [], {}
    for name in names:
        torch.manual_seed(0)
        model = dynbench.create_model(name).eval().to(args.device)
        if cuda:
            torch.cuda.empty_cache()
            reserve_memory(int(args.memory_reserve_gib * 2**30), args.device)
        x = torch.randn(args.batch, *size, device=args.device)
        summary = profile_blocks(model, x, args.iterations, args.blocks, args.warmup)
        summaries[name] = summary
        tables.append(markdown(f"{name} (batch {args.batch}, {args.device})", summary))
        del model, x
    text = "\n".join(tables)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(summaries, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
