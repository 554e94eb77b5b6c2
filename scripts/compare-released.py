#!/usr/bin/env python3
"""Time dynbench's operators beside the papers' released code, in one process.

Issue 14 asks that every dynbench operator's overhead (latency ratio to the static
model, minus 1) be at most 0.9x the released code's. This builds, for each backbone,
the static dynbench model, dynbench's ODConv 1x/4x, DY-Conv 4x, DCD and CondConv 8x
variants, and the released code's counterparts (``dynbench.models.released``: which
model stands for which), then times all of them interleaved
(``dynbench.measure.timing.interleaved``: 1 thread, batch 1, one turn per model per
round in a shuffled order) and reports each ratio to the same static model with a
95% interval, and the quotient of the two overheads with a bootstrap interval
(``dynbench.measure.side_by_side``; the rows: ``dynbench.report.released_tables``).

Before timing, every dynbench variant's fast path is checked against its naive path
(rtol 1e-5, ``dynbench.measure.fast_naive``). Example (prints a markdown table; ``--out``
also writes it):

    python scripts/compare-released.py --odconv R/ODConv --dcd R/dcd \
        --dyconv R/Dynamic-convolution-Pytorch --condconv R/condconv.pytorch

``--gpu`` times the same models on a CUDA device at ``--batch`` (200, the ODConv paper's
speed table) in fp32 with cudnn.benchmark on, as the throughput suite does: every model
warmed until two blocks agree, then ``--gpu-rounds`` rounds in which each model runs one
block of ``--iterations`` calls (CUDA events) in a freshly shuffled order
(``dynbench.measure.gpu_rounds``); per row images/s, the ratio to the static model and
dynbench / released (medians of per-round ratios), the blocks' spread and each model's
peak memory (its weights, the batch and its activations).

``--profile`` breaks each model's forward down by op kind instead
(``dynbench.measure.op_kinds``); ``--layers`` times the DY-Conv and CondConv models layer
by layer beside the released layers swapped in for them, which resolves per-layer
differences the whole-model ratios are too noisy to show.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn

import dynbench
from dynbench.errors import DynbenchError
from dynbench.measure.fast_naive import fast_naive_mismatches, layer_inputs
from dynbench.measure.gpu_rounds import GpuTimed, gpu_interleaved
from dynbench.measure.op_kinds import op_kind_times
from dynbench.measure.side_by_side import compare_gpu, compare_overheads, sum_layer_pairs
from dynbench.measure.timing import Timed, inference_call, interleaved, load_average, set_threads
from dynbench.models.released import BACKBONES, SWAPPED, VARIANTS, Released, layer_kind, pairs
from dynbench.report import released_tables as tables

INPUT = (1, 3, 224, 224)


def side_by_side(
    backbone: str, released: Released, variants: tuple[str, ...], check: Tensor | None = None
) -> dict[str, nn.Module]:
    """The static model, then each pair's dynbench model (once: ``condconv_8x`` and
    ``condconv_8x_model`` share one) and its released counterpart, in eval mode; given
    ``check``, an input, each dynbench model's fast paths are checked against its naive
    paths on it first."""
    models: dict[str, nn.Module] = {backbone: dynbench.create_model(backbone).eval()}
    for variant, name in pairs(backbone, variants):
        if name not in models:
            models[name] = dynbench.create_model(name).eval()
            if check is not None and (differing := fast_naive_mismatches(models[name], check)):
                raise SystemExit(f"{name}: fast path differs from naive in {', '.join(differing)}")
        models[f"released {variant}"] = released.model(backbone, variant).eval()
    return models


def profile_backbone(backbone: str, released: Released, variants: tuple[str, ...]) -> list[str]:
    """The --profile rows of one backbone: static, then each pair."""
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    rows = []
    for name, model in side_by_side(backbone, released, variants).items():
        print(f"profiling {name}", file=sys.stderr)
        rows.append(tables.op_kind_row(backbone, name, op_kind_times(model, x)))
    return rows


def time_layers(
    backbone: str, released: Released, variants: tuple[str, ...], rounds: int
) -> list[str]:
    """--layers: each dynamic layer of the swapped variants timed beside the released layer
    that stands in for it, on the input it receives in dynbench's model, interleaved
    (``rounds`` rounds); rows summed by layer kind, then all layers."""
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    rows = []
    for variant in (v for v in variants if v in SWAPPED):
        ours = dynbench.create_model(f"{backbone}_{variant}").eval()
        theirs = dict(released.model(backbone, variant).eval().named_modules())
        modules = dict(ours.named_modules())
        captured = layer_inputs(ours, SWAPPED[variant], x)
        kinds: dict[str, list[tuple[Timed, Timed]]] = {}
        for i, (name, args) in enumerate(captured.items(), 1):
            print(f"\r{backbone} {variant}: layer {i}/{len(captured)}", end="", file=sys.stderr)
            calls = {
                "dynbench": inference_call(modules[name], *args),
                "released": inference_call(theirs[name], *args),
            }
            timed = interleaved(calls, rounds, 0.0, warmup=3).timed
            pair = (timed["dynbench"], timed["released"])
            kinds.setdefault(layer_kind(modules[name]), []).append(pair)
        print(file=sys.stderr)
        kinds["all"] = [pair for timed in kinds.values() for pair in timed]
        rows += [
            tables.layer_row(backbone, variant, kind, sum_layer_pairs(timed))
            for kind, timed in kinds.items()
        ]
    return rows


def gpu_backbone(
    backbone: str, released: Released, variants: tuple[str, ...], args: argparse.Namespace
) -> tuple[str, list[str]]:
    """--gpu: the header line and the rows of one backbone."""
    torch.manual_seed(0)
    x = torch.randn(args.batch, *INPUT[1:], device=args.device)
    models = side_by_side(backbone, released, variants)
    models = {name: model.to(args.device) for name, model in models.items()}
    start = time.perf_counter()
    timed: dict[str, GpuTimed] = gpu_interleaved(models, x, args.gpu_rounds, args.iterations)
    static = timed[backbone]
    unsteady = [name for name, t in timed.items() if not t.steady]
    header = (
        f"**{backbone}**: {args.gpu_rounds} rounds in {time.perf_counter() - start:.0f} s; "
        f"static {args.batch * args.iterations / static.median * 1e3:,.0f} images/s "
        f"(spread {static.spread:.1%}); warm-up never steady: {', '.join(unsteady) or 'none'}"
    )
    images = args.batch * args.iterations
    rows = [
        tables.gpu_row(
            backbone,
            variant,
            compare_gpu(timed[name], timed[f"released {variant}"], static, images),
        )
        for variant, name in pairs(backbone, variants)
    ]
    for model in models.values():
        model.to("cpu")
    if x.is_cuda:
        torch.cuda.empty_cache()
    return header, rows


def time_backbone(
    backbone: str, released: Released, variants: tuple[str, ...], args: argparse.Namespace
) -> tuple[str, list[str]]:
    """The header line and the whole-model rows of one backbone."""
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    models = side_by_side(backbone, released, variants, check=x)
    calls = {name: inference_call(model, x) for name, model in models.items()}
    load_before = load_average()
    start = time.perf_counter()
    result = interleaved(
        calls,
        args.rounds,
        args.min_run_time,
        warmup=3,
        block_time=0.02,
        on_round=lambda done, total: print(
            f"\r{backbone}: round {done}/{total}", end="", file=sys.stderr, flush=True
        ),
    )
    print(file=sys.stderr)
    timed, static = result.timed, result.timed[backbone]
    header = (
        f"**{backbone}**: {result.rounds} rounds in {time.perf_counter() - start:.0f} s, "
        f"load {load_before:.2f} -> {load_average():.2f}; static {static.median * 1e3:.2f} ms "
        f"(IQR {static.iqr / static.median:.1%}, "
        f"{static.faults_per_call[0]:.0f} page faults a call)"
    )
    rows = [
        tables.overhead_row(
            backbone, variant, compare_overheads(timed[name], timed[f"released {variant}"], static)
        )
        for variant, name in pairs(backbone, variants)
    ]
    return header, rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line; bad values end with a one-line error and exit 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, repository in (
        ("--odconv", "OSVAI/ODConv"),
        ("--dcd", "liyunsheng13/dcd"),
        ("--dyconv", "kaijieshi7/Dynamic-convolution-Pytorch"),
        ("--condconv", "d-li14/condconv.pytorch"),
    ):
        parser.add_argument(flag, type=Path, required=True, help=f"{repository} checkout")
    for flag, accepted in (("--backbones", BACKBONES), ("--variants", VARIANTS)):
        parser.add_argument(
            flag, default=",".join(accepted), help=f"comma-separated, of {', '.join(accepted)}"
        )
    parser.add_argument("--rounds", type=int, default=100, help="at least this many rounds")
    parser.add_argument(
        "--min-run-time",
        type=float,
        default=2.0,
        help="and at least this many timed seconds per model",
    )
    parser.add_argument("--batch", type=int, default=200, help="--gpu: images per call")
    parser.add_argument("--iterations", type=int, default=10, help="--gpu: calls per block")
    parser.add_argument("--gpu-rounds", type=int, default=5, help="--gpu: timed rounds")
    parser.add_argument(
        "--device", default="cuda", help="--gpu: the device (cpu only to try the mode out)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--gpu",
        action="store_true",
        help="instead, images/s and peak memory at --batch on the GPU (fp32, cudnn.benchmark)",
    )
    mode.add_argument(
        "--profile",
        action="store_true",
        help="instead of timing, break each model's forward down by op kind (torch.profiler)",
    )
    mode.add_argument(
        "--layers",
        action="store_true",
        help=f"instead, time each layer of {', '.join(SWAPPED)} beside the released layer "
        "swapped in for it, on its input in the model (--rounds rounds a layer)",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    args.backbones = tuple(args.backbones.split(","))
    args.variants = tuple(args.variants.split(","))
    for value, accepted in ((args.backbones, BACKBONES), (args.variants, VARIANTS)):
        if wrong := [v for v in value if v not in accepted]:
            parser.exit(2, f"unknown {wrong}; accepted: {', '.join(accepted)}\n")
    if args.gpu and min(args.batch, args.iterations, args.gpu_rounds) < 1:
        parser.exit(2, "--batch, --iterations and --gpu-rounds must be >= 1\n")
    if args.gpu and args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.exit(2, "--gpu: no CUDA device here (--device cpu tries the mode out)\n")
    return args


def setup_line(args: argparse.Namespace, threads: int) -> str:
    """When, on what and how: the line above the table (the GPU mode's settings on)."""
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if not args.gpu:
        return (
            f"{now}, torch {torch.__version__}, {threads} thread, batch 1, 224x224, "
            f"{os.cpu_count()} CPUs; "
            + tables.METHODS["profile" if args.profile else "layers" if args.layers else "time"]
        )
    torch.backends.cudnn.benchmark = True
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device
    return (
        f"{now}, torch {torch.__version__}, {device}, batch {args.batch}, fp32 (TF32 in cuDNN "
        f"convs: {torch.backends.cudnn.allow_tf32}, in matmuls: "
        f"{torch.backends.cuda.matmul.allow_tf32}), cudnn.benchmark on, 224x224; "
        + tables.gpu_method(args.iterations, args.gpu_rounds, args.device.startswith("cuda"))
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    threads = set_threads(1)["threads"]
    try:
        released = Released(args.odconv, args.dcd, args.dyconv, args.condconv)
    except DynbenchError as error:
        raise SystemExit(str(error)) from None
    command = " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)])
    lines = [f"`{command}`", "", setup_line(args, threads), ""]
    if args.profile:
        rows = [r for b in args.backbones for r in profile_backbone(b, released, args.variants)]
        lines += tables.table(tables.OP_KIND_COLUMNS, rows)
    elif args.layers:
        rows = [
            r for b in args.backbones for r in time_layers(b, released, args.variants, args.rounds)
        ]
        lines += tables.table(tables.LAYER_COLUMNS, rows)
    else:
        timer = gpu_backbone if args.gpu else time_backbone
        rows = []
        for backbone in args.backbones:
            header, body = timer(backbone, released, args.variants, args)
            lines += [header, ""]
            rows += body
        lines += tables.table(tables.GPU_COLUMNS if args.gpu else tables.OVERHEAD_COLUMNS, rows)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
