"""The markdown tables of dynbench's operators beside the released code
(``scripts/compare-released.py``, reports/released/): one row per compared pair, from the
frozen comparisons of :mod:`dynbench.measure.side_by_side`."""

from __future__ import annotations

from dynbench.measure.op_kinds import OP_KINDS
from dynbench.measure.side_by_side import GpuComparison, LayerPairs, OverheadComparison

OVERHEAD_COLUMNS = (
    "| backbone | operator | released ratio [95%] | dynbench ratio [95%] | "
    "quotient [95%] | <= 0.9 | ms | IQR / median | page faults / call |"
)
LAYER_COLUMNS = (
    "| backbone | operator | layer kind | layers | released ms | dynbench ms | "
    "dynbench - released per layer | median ratio | IQR / median: median [largest] |"
)
GPU_COLUMNS = (
    "| backbone | operator | images/s released / dynbench | ratio to static released / "
    "dynbench | dynbench / released | peak GiB released / dynbench | spread released / "
    "dynbench | at least as fast, no more memory |"
)
OP_KIND_COLUMNS = "| backbone | model | " + " | ".join(OP_KINDS) + " |"

# what each CPU table shows and how it was measured, the line above it
METHODS = {
    "profile": (
        "ms per forward under torch.profiler (5 forwards), top-level aten ops by kind: "
        "conv (every conv, static ones included), kernel mix ([B, K] @ [K, N] matmuls, "
        "K <= 8, N >= 1024), other ops; outside ops = forward minus the ops (Python, "
        "module calls, dispatch). The profiler's own cost per op inflates the small "
        "ops: a breakdown, not a timing."
    ),
    "layers": (
        "each dynamic layer of dynbench's model and the released layer swapped in for "
        "it, timed interleaved on the input the layer receives in dynbench's model; per "
        "layer kind: the layers' median times summed, the mean difference per layer, the "
        "median over layers of the median per-round ratio dynbench / released, and the "
        "median and largest IQR / median of the layers' timings, both sides."
    ),
    "time": (
        "ratio = median of per-round latency ratios to the static dynbench model with "
        "its distribution-free 95% interval; quotient = overhead(dynbench) / "
        "overhead(released) with a 95% bootstrap interval over rounds; target <= 0.9 "
        "('yes' when the whole interval is). ms = median per call, released / dynbench; "
        "IQR / median and minor page faults per call likewise."
    ),
}


def gpu_method(iterations: int, rounds: int, cuda_events: bool) -> str:
    """The GPU table's method line: blocks of ``iterations`` calls, ``rounds`` rounds."""
    return (
        f"each model warmed until two blocks of {iterations} calls agree within 2% "
        f"(at most 4 blocks), then {rounds} rounds of one block each, shuffled "
        f"({'CUDA events' if cuda_events else 'wall clock'}); "
        "images/s from the median block; ratios = medians of per-round "
        "block-time ratios; peak = the most one call allocates above the other models' "
        "weights (after the timing, dynbench's kept buffers dropped), plus its weights "
        "and the batch; spread = (slowest - "
        "fastest block) / median."
    )


def table(columns: str, rows: list[str]) -> list[str]:
    """The header, its separator line and the rows."""
    return [
        columns,
        "| " + " | ".join("---" for _ in range(columns.count(" | ") + 1)) + " |",
        *rows,
    ]


def _interval(values: tuple[float, float, float]) -> str:
    return f"{values[0]:.3f} [{values[1]:.3f}, {values[2]:.3f}]"


def overhead_row(backbone: str, variant: str, c: OverheadComparison) -> str:
    """One row of the whole-model table (:data:`OVERHEAD_COLUMNS`)."""
    rel, ours = c.released, c.ours
    return (
        f"| {backbone} | {variant} | {_interval(c.released_ratio)} | "
        f"{_interval(c.ours_ratio)} | {c.quotient:.2f} "
        f"[{c.quotient_interval[0]:.2f}, {c.quotient_interval[1]:.2f}] | {c.verdict} | "
        f"{rel.median_s * 1e3:.2f} / {ours.median_s * 1e3:.2f} | "
        f"{rel.spread:.1%} / {ours.spread:.1%} | {rel.faults:.0f} / {ours.faults:.0f} |"
    )


def layer_row(backbone: str, variant: str, kind: str, pairs: LayerPairs) -> str:
    """One row of the layer-by-layer table (:data:`LAYER_COLUMNS`)."""
    return (
        f"| {backbone} | {variant} | {kind} | {pairs.layers} | {pairs.released_s * 1e3:.2f} | "
        f"{pairs.ours_s * 1e3:.2f} | {pairs.difference_s * 1e6:+.1f} us | "
        f"{pairs.median_ratio:.3f} | {pairs.median_spread:.1%} [{pairs.largest_spread:.1%}] |"
    )


def gpu_row(backbone: str, variant: str, c: GpuComparison) -> str:
    """One row of the GPU table (:data:`GPU_COLUMNS`)."""
    peaks = " / ".join("-" if g is None else f"{g:.2f}" for g in (c.released_gib, c.ours_gib))
    return (
        f"| {backbone} | {variant} | {c.released_images_s:,.0f} / {c.ours_images_s:,.0f} | "
        f"{c.released_ratio:.3f} / {c.ours_ratio:.3f} | {c.faster:.3f} | {peaks} | "
        f"{c.released_spread:.1%} / {c.ours_spread:.1%} | {c.verdict} |"
    )


def op_kind_row(backbone: str, model: str, times: dict[str, float]) -> str:
    """One row of the op-kind table (:data:`OP_KIND_COLUMNS`), milliseconds a forward."""
    return f"| {backbone} | {model} | " + " | ".join(f"{times[k]:.2f}" for k in OP_KINDS) + " |"
