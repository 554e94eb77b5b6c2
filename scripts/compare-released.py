#!/usr/bin/env python3
"""Time dynbench's operators beside the papers' released code, in one process.

Issue 14 asks that every dynbench operator's overhead (latency ratio to the static
model, minus 1) be at most 0.9x the released code's. This builds, for each backbone,
the static dynbench model, dynbench's ODConv 1x/4x, DY-Conv 4x, DCD and CondConv 8x
variants, and the released code's counterparts, then times all of them interleaved
(``dynbench.measure.timing.interleaved``: 1 thread, batch 1, one turn per model per
round in a shuffled order) and reports each ratio to the same static model with a
95% interval, and the quotient of the two overheads with a bootstrap interval.

The released repositories are imported from the paths given, never copied:

* OSVAI/ODConv: its ``od_resnet18/50`` and ``od_mobilenetv2_100`` models;
* liyunsheng13/dcd: its ``resnet18_dcd``/``resnet50_dcd`` and ``mobilenetv2_dcd``
  (``fc_squeeze=16``, the x1.0 setting of its README);
* kaijieshi7/Dynamic-convolution-Pytorch gives an operator only: dynbench's DY-Conv
  model with every ``DynamicConv2d`` swapped for the released ``Dynamic_conv2d``
  (same geometry, bias and K; temperature 1, the evaluation value);
* d-li14/condconv.pytorch: its ``cond_mobilenetv2``; for ResNets (it has none)
  dynbench's CondConv model with the released ``CondConv2d`` in place of each conv,
  its ``route_func`` as each block's shared routing, and classifier a released 1x1
  ``CondConv2d`` on the pooled map routed by its own ``route_func`` (as its
  MobileNetV2 does).

Before timing, every dynbench variant's fast path is checked against its naive path
(rtol 1e-5). Example (prints a markdown table; ``--out`` also writes it):

    python scripts/compare-released.py --odconv R/ODConv --dcd R/dcd \
        --dyconv R/Dynamic-convolution-Pytorch --condconv R/condconv.pytorch
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

import dynbench
from dynbench.measure.timing import (
    Timed,
    inference_call,
    interleaved,
    load_average,
    ratio_with_ci,
    set_threads,
)
from dynbench.ops.base import DynamicOp
from dynbench.ops.condconv import CondConv2d, CondConvRouting, CondLinear
from dynbench.ops.dyconv import DynamicConv2d

BACKBONES = ("resnet18", "resnet50", "mobilenetv2_100")
VARIANTS = ("odconv_1x", "odconv_4x", "dyconv_4x", "dcd", "condconv_8x")
INPUT = (1, 3, 224, 224)


def load_module(name: str, path: Path, search: Path):
    """Import ``path`` as module ``name``, with ``search`` on sys.path for its own imports."""
    if not path.is_file():
        raise SystemExit(f"released code not found: {path} (pass the repository's root)")
    sys.path.insert(0, str(search))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def swap(model: nn.Module, kind: type, make: Callable[[nn.Module], nn.Module]) -> int:
    """Replace every submodule of type ``kind`` by ``make(it)``; how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, kind):
                setattr(parent, name, make(child))
                replaced += 1
    return replaced


class Released:
    """The released repositories, imported once, and the models built from them."""

    def __init__(self, odconv: Path, dcd: Path, dyconv: Path, condconv: Path) -> None:
        self.od_resnet = load_module("released_od_resnet", odconv / "models/od_resnet.py", odconv)
        self.od_mobile = load_module(
            "released_od_mobilenetv2", odconv / "models/od_mobilenetv2.py", odconv
        )
        imagenet = dcd / "models/imagenet"
        self.dcd_resnet = load_module("released_dcd_resnet", imagenet / "resnet_dcd.py", imagenet)
        self.dcd_mobile = load_module(
            "released_dcd_mobilenetv2", imagenet / "mobilenetv2_dcd.py", imagenet
        )
        self.dyconv = load_module("released_dynamic_conv", dyconv / "dynamic_conv.py", dyconv)
        self.condconv = load_module("condconv", condconv / "condconv.py", condconv)
        self.cond_mobile = load_module(
            "released_cond_mobilenetv2", condconv / "cond_mobilenetv2.py", condconv
        )

    def model(self, backbone: str, variant: str) -> nn.Module:
        mobile = backbone.startswith("mobilenetv2")
        depth = backbone.removeprefix("resnet")
        if variant.startswith("odconv"):
            kernels = int(variant.split("_")[1].removesuffix("x"))
            if mobile:
                return self.od_mobile.od_mobilenetv2_100(kernel_num=kernels)
            return getattr(self.od_resnet, f"od_resnet{depth}")(kernel_num=kernels)
        if variant == "dcd":
            if mobile:
                return self.dcd_mobile.mobilenetv2_dcd(width_mult=1.0, fc_squeeze=16)
            return getattr(self.dcd_resnet, f"resnet{depth}_dcd")()
        if variant == "dyconv_4x":
            model = dynbench.create_model(f"{backbone}_dyconv_4x")
            swap(model, DynamicConv2d, self.dynamic_conv)
            return model
        if variant == "condconv_8x":
            if mobile:
                return self.cond_mobile.cond_mobilenetv2(width_mult=1.0, num_experts=8)
            model = dynbench.create_model(f"{backbone}_condconv_8x")
            swap(
                model,
                CondConvRouting,
                lambda op: self.condconv.route_func(op.fc.in_features, op.fc.out_features),
            )
            swap(model, CondConv2d, self.cond_conv)
            swap(model, CondLinear, self.cond_classifier)
            return model
        raise ValueError(f"unknown variant {variant!r}")

    def dynamic_conv(self, op: DynamicConv2d) -> nn.Module:
        return self.dyconv.Dynamic_conv2d(
            op.in_channels,
            op.out_channels,
            op.kernel_size,
            ratio=0.25,
            stride=op.stride,
            padding=op.padding,
            groups=op.groups,
            bias=op.bias is not None,
            K=op.num_kernels,
            temperature=1,
        )

    def cond_conv(self, op: CondConv2d) -> nn.Module:
        if op.router is not None:
            raise ValueError("only block-routed CondConv2d layers are swapped")
        conv = self.condconv.CondConv2d(
            op.in_channels,
            op.out_channels,
            op.kernel_size,
            op.stride,
            op.padding,
            groups=op.groups,
            bias=op.bias is not None,
            num_experts=op.num_kernels,
        )
        conv.takes_routing = True  # so dynbench's blocks hand it their routing
        return conv

    def cond_classifier(self, op: CondLinear) -> nn.Module:
        return RoutedClassifier(
            self.condconv.route_func(op.in_features, op.num_kernels),
            self.condconv.CondConv2d(
                op.in_features,
                op.out_features,
                1,
                bias=op.bias is not None,
                num_experts=op.num_kernels,
            ),
        )


class RoutedClassifier(nn.Module):
    """A released CondConv 1x1 conv and its router standing in for dynbench's CondLinear."""

    def __init__(self, router: nn.Module, conv: nn.Module) -> None:
        super().__init__()
        self.router, self.conv = router, conv

    def forward(self, x: Tensor) -> Tensor:
        pooled = x[:, :, None, None]
        return self.conv(pooled, self.router(pooled)).flatten(1)


def check_fast_equals_naive(model: nn.Module, x: Tensor, name: str) -> None:
    """Every dynamic layer's fast output equals its naive output (rtol 1e-5, atol 1e-5 of
    the largest) on the input it receives in the model.

    Layer by layer, because whole-model outputs cannot be compared at random
    initialisation: DCD's residual is quadratic in its input there, so the relative
    rounding error doubles from layer to layer, and ResNet-50 DCD's two paths end 1%
    apart even in float64 (float32: as far apart as the outputs themselves).
    """
    inputs: dict[DynamicOp, tuple] = {}
    layers = [m for m in model.modules() if isinstance(m, DynamicOp)]
    hooks = [
        m.register_forward_pre_hook(lambda m, args: inputs.setdefault(m, args))
        for m in layers
    ]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    for layer in layers:
        if layer not in inputs:
            continue
        with torch.inference_mode():
            fast = layer(*inputs[layer])
            layer.set_impl("naive")
            naive = layer(*inputs[layer])
            layer.set_impl("fast")
        scale = naive.abs().max().item()
        if not torch.allclose(fast, naive, rtol=1e-5, atol=1e-5 * scale):
            raise SystemExit(f"{name}: a {type(layer).__name__}'s fast path differs from its naive")


def bootstrap_quotient(
    ours: Timed, theirs: Timed, static: Timed, samples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval (rounds resampled) of overhead(ours) / overhead(released)."""
    rng = random.Random(seed)
    n = len(static.times)
    mine = [o / s for o, s in zip(ours.times, static.times, strict=True)]
    released = [r / s for r, s in zip(theirs.times, static.times, strict=True)]
    quotients = []
    for _ in range(samples):
        picks = [rng.randrange(n) for _ in range(n)]
        a = statistics.median(mine[i] for i in picks) - 1
        b = statistics.median(released[i] for i in picks) - 1
        quotients.append(a / b if b > 0 else float("inf"))
    quotients.sort()
    return quotients[int(0.025 * samples)], quotients[int(0.975 * samples) - 1]


def time_backbone(
    backbone: str, released: Released, variants: tuple[str, ...], args: argparse.Namespace
) -> tuple[list[str], list[str]]:
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    models: dict[str, nn.Module] = {backbone: dynbench.create_model(backbone)}
    for variant in variants:
        ours = dynbench.create_model(f"{backbone}_{variant}").eval()
        check_fast_equals_naive(ours, x, f"{backbone}_{variant}")
        models[f"{backbone}_{variant}"] = ours
        models[f"released {variant}"] = released.model(backbone, variant)
    calls = {name: inference_call(model.eval(), x) for name, model in models.items()}
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
    rows = []
    for variant in variants:
        ours, theirs = timed[f"{backbone}_{variant}"], timed[f"released {variant}"]
        r_ours, lo_ours, hi_ours = ratio_with_ci(ours, static)
        r_rel, lo_rel, hi_rel = ratio_with_ci(theirs, static)
        quotient = (r_ours - 1) / (r_rel - 1) if r_rel > 1 else float("inf")
        q_lo, q_hi = bootstrap_quotient(ours, theirs, static)
        verdict = "yes" if q_hi <= 0.9 else ("no" if q_lo > 0.9 else "unsettled")
        rows.append(
            f"| {backbone} | {variant} | {r_rel:.3f} [{lo_rel:.3f}, {hi_rel:.3f}] | "
            f"{r_ours:.3f} [{lo_ours:.3f}, {hi_ours:.3f}] | {quotient:.2f} "
            f"[{q_lo:.2f}, {q_hi:.2f}] | {verdict} | {theirs.median * 1e3:.2f} / "
            f"{ours.median * 1e3:.2f} | {theirs.iqr / theirs.median:.1%} / "
            f"{ours.iqr / ours.median:.1%} | {theirs.faults_per_call[0]:.0f} / "
            f"{ours.faults_per_call[0]:.0f} |"
        )
    return [header], rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--odconv", type=Path, required=True, help="OSVAI/ODConv checkout")
    parser.add_argument("--dcd", type=Path, required=True, help="liyunsheng13/dcd checkout")
    parser.add_argument(
        "--dyconv", type=Path, required=True, help="kaijieshi7/Dynamic-convolution-Pytorch checkout"
    )
    parser.add_argument(
        "--condconv", type=Path, required=True, help="d-li14/condconv.pytorch checkout"
    )
    parser.add_argument(
        "--backbones",
        default=",".join(BACKBONES),
        help=f"comma-separated, of {', '.join(BACKBONES)}",
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--rounds", type=int, default=100, help="at least this many rounds")
    parser.add_argument(
        "--min-run-time",
        type=float,
        default=2.0,
        help="and at least this many timed seconds per model",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()
    backbones = tuple(args.backbones.split(","))
    variants = tuple(args.variants.split(","))
    for value, accepted in ((backbones, BACKBONES), (variants, VARIANTS)):
        wrong = [v for v in value if v not in accepted]
        if wrong:
            print(f"unknown {wrong}; accepted: {', '.join(accepted)}", file=sys.stderr)
            return 2
    threads = set_threads(1)
    released = Released(args.odconv, args.dcd, args.dyconv, args.condconv)
    lines = [
        f"`{' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}`",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, "
        f"{threads['threads']} thread, batch 1, 224x224, {os.cpu_count()} CPUs; "
        "ratio = median of per-round latency ratios to the static dynbench model with its "
        "distribution-free 95% interval; quotient = overhead(dynbench) / overhead(released) "
        "with a 95% bootstrap interval over rounds; target <= 0.9 ('yes' when the whole "
        "interval is). ms = median per call, released / dynbench; IQR / median and minor "
        "page faults per call likewise.",
        "",
    ]
    rows = []
    for backbone in backbones:
        header, body = time_backbone(backbone, released, variants, args)
        lines += [*header, ""]
        rows += body
    lines += [
        "| backbone | operator | released ratio [95%] | dynbench ratio [95%] | "
        "quotient [95%] | <= 0.9 | ms | IQR / median | page faults / call |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
