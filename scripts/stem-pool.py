#!/usr/bin/env python3
"""Time the ImageNet ResNet stem's max-pool as PyTorch runs it on an NCHW map and as
``dynbench.models.resnet.StemPool`` runs it (a channels-last copy in, the result copied
back), on the stem's output shape, one thread, in one process; and check they agree.

    python scripts/stem-pool.py [--batch 1] [--min-run-time 1]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils import benchmark

from dynbench.measure.timing import set_threads
from dynbench.models.resnet import StemPool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--min-run-time", type=float, default=1.0)
    args = parser.parse_args()
    set_threads(1)
    x = torch.relu(torch.randn(args.batch, 64, 112, 112))
    pools = {"nn.MaxPool2d (NCHW)": nn.MaxPool2d(3, 2, 1), "StemPool": StemPool(3, 2, 1)}
    with torch.inference_mode():
        assert torch.equal(pools["StemPool"](x), pools["nn.MaxPool2d (NCHW)"](x))
        for rounds in range(2):
            for name, pool in pools.items():
                timer = benchmark.Timer("pool(x)", globals={"pool": pool, "x": x}, num_threads=1)
                m = timer.blocked_autorange(min_run_time=args.min_run_time)
                spread = m.iqr / m.median
                print(f"round {rounds + 1}: {name}: {m.median * 1e3:.3f} ms (IQR {spread:.1%})")


if __name__ == "__main__":
    main()
