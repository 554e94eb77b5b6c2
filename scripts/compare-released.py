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
* d-li14/condconv.pytorch: dynbench's CondConv model with the released ``CondConv2d``
  in place of each conv, its ``route_func`` as each block's shared routing, and
  classifier a released 1x1 ``CondConv2d`` on the pooled map routed by its own
  ``route_func`` (as its MobileNetV2 does). On MobileNetV2 the variant
  ``condconv_8x_model`` is its own ``cond_mobilenetv2`` instead: the same network
  (same parameter count), but its static layers are written more leanly than
  dynbench's (no nested ``nn.Sequential``), which a ratio to dynbench's static model
  books as a smaller operator overhead; the swapped model keeps the skeletons equal.

Before timing, every dynbench variant's fast path is checked against its naive path
(rtol 1e-5). Example (prints a markdown table; ``--out`` also writes it):

    python scripts/compare-released.py --odconv R/ODConv --dcd R/dcd \
        --dyconv R/Dynamic-convolution-Pytorch --condconv R/condconv.pytorch

``--gpu`` times the same models on a CUDA device at ``--batch`` (200, the ODConv paper's
speed table) in fp32 with cudnn.benchmark on, as the throughput suite does: every model
warmed until two blocks agree, then ``--gpu-rounds`` rounds in which each model runs one
block of ``--iterations`` calls (CUDA events) in a freshly shuffled order; per row images/s,
the ratio to the static model and dynbench / released (medians of per-round ratios), the
blocks' spread and each model's peak memory (its weights, the batch and its activations).

``--profile`` breaks each model's forward down by op kind instead; ``--layers`` times the
DY-Conv and CondConv models layer by layer beside the released layers swapped in for them,
which resolves per-layer differences the whole-model ratios are too noisy to show.
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
from torch.profiler import ProfilerActivity, profile, record_function

import dynbench
from dynbench.measure.gpu import cuda_event_timer, wall_clock_timer, warm_until_steady
from dynbench.measure.timing import (
    Timed,
    inference_call,
    interleaved,
    load_average,
    overhead_quotient_interval,
    ratio_with_ci,
    set_threads,
)
from dynbench.ops.base import DynamicOp, release_workspaces, unmarked
from dynbench.ops.condconv import CondConv2d, CondConvRouting, CondLinear
from dynbench.ops.dyconv import DynamicConv2d

BACKBONES = ("resnet18", "resnet50", "mobilenetv2_100")
VARIANTS = ("odconv_1x", "odconv_4x", "dyconv_4x", "dcd", "condconv_8x", "condconv_8x_model")
# the dynbench model a variant is set beside, where its name is not the variant's
OURS = {"condconv_8x_model": "condconv_8x"}
INPUT = (1, 3, 224, 224)


def pairs(backbone: str, variants: tuple[str, ...]) -> list[tuple[str, str]]:
    """(variant, the dynbench model it is set beside) for the variants this backbone has
    (``condconv_8x_model`` is d-li14's MobileNetV2, which has no ResNet)."""
    return [
        (v, f"{backbone}_{OURS.get(v, v)}")
        for v in variants
        if v != "condconv_8x_model" or backbone.startswith("mobilenetv2")
    ]


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
        if variant == "condconv_8x_model":
            if not mobile:
                raise ValueError("condconv.pytorch has a MobileNetV2 model only")
            return self.cond_mobile.cond_mobilenetv2(width_mult=1.0, num_experts=8)
        if variant == "condconv_8x":
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


def layer_inputs(model: nn.Module, kinds: type | tuple[type, ...], x: Tensor) -> dict[str, tuple]:
    """The forward arguments of each submodule of type ``kinds`` in one inference forward of
    ``model``, by module name, cloned. The hooks that catch them are removed before this
    returns: one left in place would run, and clone its input, on every later call."""
    captured: dict[str, tuple] = {}

    def catch(name: str) -> Callable:
        return lambda module, args: captured.setdefault(name, tuple(a.clone() for a in args))

    hooks = [
        m.register_forward_pre_hook(catch(name))
        for name, m in model.named_modules()
        if isinstance(m, kinds)
    ]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def check_fast_equals_naive(model: nn.Module, x: Tensor, name: str) -> None:
    """Every dynamic layer's fast output equals its naive output (rtol 1e-5, atol 1e-5 of
    the largest) on the input it receives in the model.

    Layer by layer, because whole-model outputs cannot be compared at random
    initialisation: DCD's residual is quadratic in its input there, so the relative
    rounding error doubles from layer to layer, and ResNet-50 DCD's two paths end 1%
    apart even in float64 (float32: as far apart as the outputs themselves).
    """
    modules = dict(model.named_modules())
    for name, args in layer_inputs(model, DynamicOp, x).items():
        layer = modules[name]
        with torch.inference_mode():
            fast = layer(*args)
            layer.set_impl("naive")
            naive = layer(*args)
            layer.set_impl("fast")
        scale = naive.abs().max().item()
        if not torch.allclose(fast, naive, rtol=1e-5, atol=1e-5 * scale):
            raise SystemExit(f"{name}: a {type(layer).__name__}'s fast path differs from its naive")


# what the op-level breakdown (--profile) sums, top-level aten ops only
BREAKDOWN = ("conv", "kernel mix", "other ops", "outside ops", "forward")
MM_OPS = {"aten::mm", "aten::matmul", "aten::addmm", "aten::bmm", "aten::linear"}
MAX_KERNELS = 8  # a matmul this deep (or less) into >= MIN_MIXED columns mixes kernels
MIN_MIXED = 1024


def category(name: str, shapes: list) -> str:
    """``conv``, ``kernel mix`` ([B, K] @ [K, N] with K <= 8 and N >= 1024: the same test
    for both codes, whatever they call the op) or ``other ops``."""
    if name in ("aten::conv2d", "aten::convolution"):
        return "conv"
    if name in MM_OPS and len(shapes) >= 2 and len(shapes[0]) == 2 and len(shapes[1]) == 2:
        depth, columns = shapes[1]
        if depth <= MAX_KERNELS and columns >= MIN_MIXED:
            return "kernel mix"
    return "other ops"


def op_breakdown(model: nn.Module, x: Tensor, steps: int = 5) -> dict[str, float]:
    """Milliseconds per forward by :data:`BREAKDOWN`, from torch.profiler at one thread.

    Only top-level aten ops are summed (an op called by another op is inside its
    parent's time), so the categories add up to the ops' time, and ``outside ops`` is
    the rest of the forward: Python, module calls and dispatch between ops. dynbench's
    phase marks are off (the released code has none). The profiler adds its own cost
    per op, so this is a breakdown, not a timing.
    """
    with torch.inference_mode(), unmarked():
        for _ in range(3):
            model(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                with record_function("forward"):
                    model(x)
    totals = dict.fromkeys(BREAKDOWN, 0.0)
    for event in prof.events():
        if event.name == "forward":
            totals["forward"] += event.cpu_time_total
        elif event.name.startswith("aten::") and (
            event.cpu_parent is None or not event.cpu_parent.name.startswith("aten::")
        ):
            totals[category(event.name, event.input_shapes)] += event.cpu_time_total
    totals["outside ops"] = totals["forward"] - sum(
        totals[key] for key in ("conv", "kernel mix", "other ops")
    )
    return {key: value / steps / 1000 for key, value in totals.items()}


def profile_backbone(backbone: str, released: Released, variants: tuple[str, ...]) -> list[str]:
    """The --profile table rows of one backbone: static, then each pair."""
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    rows = []
    models = {backbone: dynbench.create_model(backbone)}
    for variant, name in pairs(backbone, variants):
        if name not in models:  # condconv_8x and condconv_8x_model share one
            models[name] = dynbench.create_model(name)
        models[f"released {variant}"] = released.model(backbone, variant)
    for name, model in models.items():
        print(f"profiling {name}", file=sys.stderr)
        parts = op_breakdown(model.eval(), x)
        rows.append(
            f"| {backbone} | {name} | "
            + " | ".join(f"{parts[key]:.2f}" for key in BREAKDOWN)
            + " |"
        )
    return rows


# the variants whose released counterpart is dynbench's own model with the released layers
# swapped in (Released.model): the two models' layers pair up by module name
SWAPPED = {
    "dyconv_4x": (DynamicConv2d,),
    "condconv_8x": (CondConv2d, CondConvRouting, CondLinear),
}
LAYER_COLUMNS = (
    "| backbone | operator | layer kind | layers | released ms | dynbench ms | "
    "dynbench - released per layer | median ratio | IQR / median: median [largest] |"
)


def layer_kind(layer: nn.Module) -> str:
    if isinstance(layer, CondConvRouting):
        return "block routing"
    if isinstance(layer, CondLinear):
        return "classifier"
    k = layer.kernel_size
    return f"{k}x{k} depthwise" if layer.groups > 1 else f"{k}x{k}"


def kind_row(backbone: str, variant: str, kind: str, timed: list[tuple[Timed, Timed]]) -> str:
    """One --layers row: the layers' medians summed, the mean difference per layer, the
    median over layers of each layer's median per-round ratio dynbench / released."""
    ours = sum(t.median for t, _ in timed)
    theirs = sum(r.median for _, r in timed)
    ratio = statistics.median(
        statistics.median(o / r for o, r in zip(t.times, rel.times, strict=True))
        for t, rel in timed
    )
    spreads = [x.iqr / x.median for pair in timed for x in pair]
    return (
        f"| {backbone} | {variant} | {kind} | {len(timed)} | {theirs * 1e3:.2f} | "
        f"{ours * 1e3:.2f} | {(ours - theirs) / len(timed) * 1e6:+.1f} us | {ratio:.3f} | "
        f"{statistics.median(spreads):.1%} [{max(spreads):.1%}] |"
    )


def time_layers(
    backbone: str, released: Released, variants: tuple[str, ...], rounds: int
) -> list[str]:
    """--layers: each dynamic layer of the swapped variants timed beside the released layer
    that stands in for it, on the input it receives in dynbench's model, interleaved
    (``rounds`` rounds); rows summed by layer kind, then all layers."""
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    rows = []
    for variant in variants:
        if variant not in SWAPPED:
            continue
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
        rows += [kind_row(backbone, variant, kind, timed) for kind, timed in kinds.items()]
        every = [pair for timed in kinds.values() for pair in timed]
        rows.append(kind_row(backbone, variant, "all", every))
    return rows


class GpuTimed:
    """One model's blocks in the GPU rounds: milliseconds per block of ``iterations`` calls,
    the warm-up blocks, and its peak memory in bytes (None off CUDA)."""

    def __init__(self) -> None:
        self.blocks: list[float] = []
        self.warmup: tuple[float, ...] = ()
        self.steady: bool = False
        self.peak: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.blocks)

    @property
    def spread(self) -> float:
        return (max(self.blocks) - min(self.blocks)) / self.median


def tensor_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def gpu_interleaved(
    models: dict[str, nn.Module],
    x: Tensor,
    rounds: int,
    iterations: int,
    timer: Callable[[Callable[[], object], int], float] | None = None,
    warmup_blocks: int = 4,
    tolerance: float = 0.02,
    seed: int = 0,
) -> dict[str, GpuTimed]:
    """Every model (already on ``x``'s device; CUDA events time it there, the wall clock
    elsewhere) warmed until two blocks of ``iterations``
    calls agree within ``tolerance`` (at most ``warmup_blocks``), then ``rounds`` rounds of
    one block each in a shuffled order; then, on CUDA, each model's :func:`peak_alone`."""
    cuda = x.is_cuda
    timer = timer or (cuda_event_timer if cuda else wall_clock_timer)
    rng = random.Random(seed)
    timed = {name: GpuTimed() for name in models}
    calls = {name: (lambda m=model: m(x)) for name, model in models.items()}
    with torch.inference_mode():
        for name in models:
            timed[name].warmup, timed[name].steady = warm_until_steady(
                timer, calls[name], iterations, tolerance, warmup_blocks
            )
        for _ in range(rounds):
            order = list(models)
            rng.shuffle(order)
            for name in order:
                timed[name].blocks.append(timer(calls[name], iterations))
        if cuda:
            for name, model in models.items():
                timed[name].peak = peak_alone(model, x)
    return timed


def peak_alone(model: nn.Module, x: Tensor) -> int:
    """The most memory one call of ``model`` allocates above what is allocated before it
    (the other models' weights), plus its own weights and the batch: what it would hold
    alone. dynbench's kept buffers are dropped first and after, so none is counted to
    another model."""
    release_workspaces(model)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    model(x)
    torch.cuda.synchronize()
    own = torch.cuda.max_memory_allocated() - before
    release_workspaces(model)
    return own + tensor_bytes(model) + x.numel() * x.element_size()


def per_round(ours: GpuTimed, theirs: GpuTimed) -> float:
    """Median over rounds of theirs' block time / ours': ours' throughput relative to theirs."""
    return statistics.median(t / o for o, t in zip(ours.blocks, theirs.blocks, strict=True))


def gpu_row(backbone: str, variant: str, ours: GpuTimed, theirs: GpuTimed, static: GpuTimed,
            images: int) -> str:  # fmt: skip
    """One --gpu row: images/s, ratio to static, dynbench / released, peaks, spreads."""
    faster = per_round(ours, theirs)
    gib = [None if t.peak is None else t.peak / 2**30 for t in (theirs, ours)]
    lighter = None if None in gib else gib[1] <= gib[0]
    steady = all(t.spread <= 0.02 for t in (ours, theirs, static))
    verdict = "yes" if faster >= 1 and lighter is not False else "no"
    if not steady:
        verdict += " (spread > 2%)"
    peaks = " / ".join("-" if g is None else f"{g:.2f}" for g in gib)
    return (
        f"| {backbone} | {variant} | {images / theirs.median * 1e3:,.0f} / "
        f"{images / ours.median * 1e3:,.0f} | {per_round(theirs, static):.3f} / "
        f"{per_round(ours, static):.3f} | {faster:.3f} | {peaks} | "
        f"{theirs.spread:.1%} / {ours.spread:.1%} | {verdict} |"
    )


GPU_COLUMNS = (
    "| backbone | operator | images/s released / dynbench | ratio to static released / "
    "dynbench | dynbench / released | peak GiB released / dynbench | spread released / "
    "dynbench | at least as fast, no more memory |"
)


def gpu_backbone(
    backbone: str, released: Released, variants: tuple[str, ...], args: argparse.Namespace
) -> tuple[list[str], list[str]]:
    """--gpu: the header line and the rows of one backbone."""
    torch.manual_seed(0)
    x = torch.randn(args.batch, *INPUT[1:], device=args.device)
    models: dict[str, nn.Module] = {backbone: dynbench.create_model(backbone)}
    compared = pairs(backbone, variants)
    for variant, name in compared:
        if name not in models:
            models[name] = dynbench.create_model(name)
        models[f"released {variant}"] = released.model(backbone, variant)
    models = {name: model.eval().to(args.device) for name, model in models.items()}
    start = time.perf_counter()
    timed = gpu_interleaved(models, x, args.gpu_rounds, args.iterations)
    static = timed[backbone]
    unsteady = [name for name, t in timed.items() if not t.steady]
    header = (
        f"**{backbone}**: {args.gpu_rounds} rounds in {time.perf_counter() - start:.0f} s; "
        f"static {args.batch * args.iterations / static.median * 1e3:,.0f} images/s "
        f"(spread {static.spread:.1%}); warm-up never steady: {', '.join(unsteady) or 'none'}"
    )
    images = args.batch * args.iterations
    rows = [
        gpu_row(backbone, variant, timed[name], timed[f"released {variant}"], static, images)
        for variant, name in compared
    ]
    for model in models.values():
        model.to("cpu")
    if x.is_cuda:
        torch.cuda.empty_cache()
    return [header], rows


def time_backbone(
    backbone: str, released: Released, variants: tuple[str, ...], args: argparse.Namespace
) -> tuple[list[str], list[str]]:
    torch.manual_seed(0)
    x = torch.randn(INPUT)
    models: dict[str, nn.Module] = {backbone: dynbench.create_model(backbone)}
    compared = pairs(backbone, variants)
    for variant, name in compared:
        if name not in models:
            ours = dynbench.create_model(name).eval()
            check_fast_equals_naive(ours, x, name)
            models[name] = ours
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
    for variant, name in compared:
        ours, theirs = timed[name], timed[f"released {variant}"]
        r_ours, lo_ours, hi_ours = ratio_with_ci(ours, static)
        r_rel, lo_rel, hi_rel = ratio_with_ci(theirs, static)
        quotient = (r_ours - 1) / (r_rel - 1) if r_rel > 1 else float("inf")
        q_lo, q_hi = overhead_quotient_interval(ours, theirs, static)
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
    args = parser.parse_args()
    backbones = tuple(args.backbones.split(","))
    variants = tuple(args.variants.split(","))
    for value, accepted in ((backbones, BACKBONES), (variants, VARIANTS)):
        wrong = [v for v in value if v not in accepted]
        if wrong:
            print(f"unknown {wrong}; accepted: {', '.join(accepted)}", file=sys.stderr)
            return 2
    if args.gpu and min(args.batch, args.iterations, args.gpu_rounds) < 1:
        print("--batch, --iterations and --gpu-rounds must be >= 1", file=sys.stderr)
        return 2
    if args.gpu and args.device.startswith("cuda") and not torch.cuda.is_available():
        print("--gpu: no CUDA device here (--device cpu tries the mode out)", file=sys.stderr)
        return 2
    threads = set_threads(1)
    released = Released(args.odconv, args.dcd, args.dyconv, args.condconv)
    setup = (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, "
        f"{threads['threads']} thread, batch 1, 224x224, {os.cpu_count()} CPUs; "
    )
    if args.gpu:
        torch.backends.cudnn.benchmark = True
        device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device
        setup = (
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, "
            f"{device}, batch {args.batch}, fp32 (TF32 in cuDNN convs: "
            f"{torch.backends.cudnn.allow_tf32}, in matmuls: "
            f"{torch.backends.cuda.matmul.allow_tf32}), cudnn.benchmark on, 224x224; "
        )
        method = (
            f"each model warmed until two blocks of {args.iterations} calls agree within 2% "
            f"(at most 4 blocks), then {args.gpu_rounds} rounds of one block each, shuffled "
            f"({'CUDA events' if args.device.startswith('cuda') else 'wall clock'}); "
            "images/s from the median block; ratios = medians of per-round "
            "block-time ratios; peak = the most one call allocates above the other models' "
            "weights (after the timing, dynbench's kept buffers dropped), plus its weights "
            "and the batch; spread = (slowest - "
            "fastest block) / median."
        )
    elif args.profile:
        method = (
            "ms per forward under torch.profiler (5 forwards), top-level aten ops by kind: "
            "conv (every conv, static ones included), kernel mix ([B, K] @ [K, N] matmuls, "
            "K <= 8, N >= 1024), other ops; outside ops = forward minus the ops (Python, "
            "module calls, dispatch). The profiler's own cost per op inflates the small "
            "ops: a breakdown, not a timing."
        )
    elif args.layers:
        method = (
            "each dynamic layer of dynbench's model and the released layer swapped in for "
            "it, timed interleaved on the input the layer receives in dynbench's model; per "
            "layer kind: the layers' median times summed, the mean difference per layer, the "
            "median over layers of the median per-round ratio dynbench / released, and the "
            "median and largest IQR / median of the layers' timings, both sides."
        )
    else:
        method = (
            "ratio = median of per-round latency ratios to the static dynbench model with "
            "its distribution-free 95% interval; quotient = overhead(dynbench) / "
            "overhead(released) with a 95% bootstrap interval over rounds; target <= 0.9 "
            "('yes' when the whole interval is). ms = median per call, released / dynbench; "
            "IQR / median and minor page faults per call likewise."
        )
    lines = [f"`{' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}`", "", setup + method, ""]
    if args.profile:
        rows = [
            row for backbone in backbones for row in profile_backbone(backbone, released, variants)
        ]
        lines += [
            "| backbone | model | " + " | ".join(BREAKDOWN) + " |",
            "| --- | --- | " + " | ".join("---" for _ in BREAKDOWN) + " |",
            *rows,
        ]
        return finish(lines, args.out)
    if args.layers:
        rows = [
            row
            for backbone in backbones
            for row in time_layers(backbone, released, variants, args.rounds)
        ]
        lines += [LAYER_COLUMNS, "| --- " * LAYER_COLUMNS.count(" | ") + "| --- |", *rows]
        return finish(lines, args.out)
    if args.gpu:
        rows = []
        for backbone in backbones:
            header, body = gpu_backbone(backbone, released, variants, args)
            lines += [*header, ""]
            rows += body
        lines += [GPU_COLUMNS, "| --- " * GPU_COLUMNS.count(" | ") + "| --- |", *rows]
        return finish(lines, args.out)
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
    return finish(lines, args.out)


def finish(lines: list[str], out: Path | None) -> int:
    """Print the table and write it to ``out`` if given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
