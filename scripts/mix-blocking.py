"""Does building a kernel-mixing layer's kernel block by block, while it is in cache, pay?

A CondConv / DY-Conv layer at batch 1 reads its K kernels to write the mixed kernel
(one [1, K] x [K, N] matmul), then the convolution reads that kernel back. Mixing and
convolving ``step`` output channels at a time keeps each block of the mixed kernel in
cache between the two, saving the write and the re-read of the whole kernel, at the price
of one convolution call per block. This times both ways on single layers (one thread,
batch 1, torch.utils.benchmark), the blocks' outputs checked against the whole layer's.

    python scripts/mix-blocking.py [--min-run-time S]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

# (C_in, C_out, kernel, output size, K): ResNet-18 / ResNet-50 layers and K of DY-Conv / CondConv
LAYERS = [
    (512, 512, 3, 7, 4),
    (512, 512, 3, 7, 8),
    (256, 512, 3, 7, 4),
    (256, 256, 3, 14, 4),
    (128, 128, 3, 28, 4),
    (1024, 2048, 1, 7, 4),
]
STEPS = (32, 64, 128)


def whole(kernels: torch.Tensor, x: torch.Tensor, pi: torch.Tensor, mixed: torch.Tensor):
    torch.mm(pi, kernels.view(kernels.shape[0], -1), out=mixed)
    return F.conv2d(x, mixed.view(kernels.shape[1:]), None, 1, kernels.shape[-1] // 2)


def blocked(blocks, shape, x, pi, mixed, out, step):
    for i, block in enumerate(blocks):
        rows = block.shape[1] // shape[1:].numel()
        part = mixed[:, : block.shape[1]]
        torch.mm(pi, block, out=part)
        kernel = part.view(rows, *shape[1:])
        out[:, i * step : i * step + rows] = F.conv2d(x, kernel, None, 1, shape[-1] // 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-run-time", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("| layer (C_in, C_out, k, size, K) | whole ms | " + " | ".join(
        f"blocks of {s} ms" for s in STEPS) + " |")  # fmt: skip
    print("|---" * (2 + len(STEPS)) + "|")
    for cin, cout, k, size, num in LAYERS:
        kernels = torch.randn(num, cout, cin, k, k)
        x = torch.randn(1, cin, size, size)
        pi = torch.softmax(torch.randn(1, num), 1)
        mixed = torch.empty(1, kernels[0].numel())
        reference = whole(kernels, x, pi, mixed).clone()
        cells = [Timer("f(k, x, p, m)", globals=dict(f=whole, k=kernels, x=x, p=pi, m=mixed))
                 .blocked_autorange(min_run_time=args.min_run_time).median * 1e3]  # fmt: skip
        for step in STEPS:
            blocks = [kernels[:, o : o + step].reshape(num, -1).contiguous()
                      for o in range(0, cout, step)]  # fmt: skip
            state = dict(f=blocked, b=blocks, s=kernels.shape[1:], x=x, p=pi, m=mixed,
                         o=torch.empty_like(reference), n=step)  # fmt: skip
            call = "f(b, s, x, p, m, o, n)"
            torch.testing.assert_close(eval(call, state), reference, rtol=1e-4, atol=1e-4)
            timer = Timer(call, globals=state)
            cells.append(timer.blocked_autorange(min_run_time=args.min_run_time).median * 1e3)
        print(f"| {(cin, cout, k, size, num)} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
