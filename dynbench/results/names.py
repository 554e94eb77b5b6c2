"""Every name a record can carry, in one place: metrics, their units, counters, parts, phases.

A stored record is ``(model, metric, method, value, unit, ...)``; the measures
write these names, the report reads them, and README's "Metrics" section lists
them. Keeping them here means a new counter or metric is added once.
"""

from __future__ import annotations

# MAdds counters, the papers' convention first: the order of the report's columns.
COUNTERS = ("conv_linear", "analytic", "fvcore", "ptflops", "torch")

# Parts of the analytic MAdds breakdown of an operator:
# conv: the convolution itself, as a static conv of this shape costs;
# attention: the layers of the attention/routing branch (pooling excluded);
# aggregation: building each sample's kernel from the K kernels and attentions;
# feature_scale: attentions multiplied onto feature maps instead of onto weights.
MADDS_PARTS = ("conv", "attention", "aggregation", "feature_scale")

# Profiler scopes every operator marks (see dynbench.ops.base.phase).
PHASES = ("attention", "aggregation", "conv")

# The fast routes of a kernel-mixing conv (KernelDynamicConv.route); a record's
# settings.impl names the route that ran as "fast/<route>"
MIXED, EXPERTS = "mixed", "experts"

# The executions of a spatial DynConv model (dense, masked, sparse): a sparsity record's
# settings.execution
EXECUTIONS = ("dense", "masked", "sparse")

MADDS_UNIT = "MAdds"  # multiply-adds, fvcore's unit; torch's FLOPs are halved to match
RATIO_UNIT = "x baseline"

# The model name of the records that measure the machine itself (the machine suite)
MACHINE_MODEL = "(machine)"


def ceiling_scope(threads: int) -> str:
    """The ``method`` of a machine ceiling record: ``1 thread`` (the batch-1 latency
    setting, which the floor is set against) or ``all cores``."""
    return "1 thread" if threads == 1 else "all cores"


# The size metrics the guard and the published comparison check.
SIZE_METRICS = ("params", "params_no_classifier", "madds")

# metric -> (unit, meaning)
METRICS: dict[str, tuple[str, str]] = {
    "params": ("params", "parameters, total"),
    "params_trainable": ("params", "parameters with requires_grad"),
    "params_no_classifier": (
        "params",
        "parameters without the final classifier (a params convention of some tables)",
    ),
    "madds": (MADDS_UNIT, "multiply-adds at batch 1; method = one of COUNTERS"),
    "weight_bytes_per_image": (
        "bytes",
        "bytes of weights one image reads at batch 1 (all K kernels)",
    ),
    "latency_ms": ("ms", "median single-thread CPU latency at batch 1 (torch.utils.benchmark)"),
    "latency_ratio": (RATIO_UNIT, "latency / family baseline's, median of the per-round ratios"),
    "cpu_images_per_s": ("images/s", "1000 / latency_ms"),
    "gpu_images_per_s": ("images/s", "GPU throughput at the suite's batch (CUDA events)"),
    "gpu_peak_memory": ("bytes", "torch.cuda.max_memory_allocated during the throughput run"),
    "train_step_ms_per_image": ("ms/image", "forward + backward + SGD step time / batch"),
    "train_step_ratio": (
        RATIO_UNIT,
        "train step time / family baseline's, median of the per-round ratios",
    ),
    "batch_latency_ms": (
        "ms/image",
        "median latency per image at settings.batch and settings.device (batch-sweep)",
    ),
    "batch_latency_ratio": (
        RATIO_UNIT,
        "per-image latency / family baseline's at the same batch, per-round median",
    ),
    "profile_ms": ("ms", "ms per forward in a phase (attention, aggregation, conv, other)"),
    "resolution_madds": (MADDS_UNIT, "multiply-adds at batch 1 at settings.input_size"),
    "conditional_madds": (
        MADDS_UNIT,
        "multiply-adds a spatial DynConv model's masks leave (method dynconv | conv_linear)",
    ),
    "spatial_latency_ms": ("ms", "latency of one execution (dense | masked | sparse)"),
    "spatial_latency_ratio": (RATIO_UNIT, "latency / the dense execution's, per-round median"),
    "spatial_gpu_images_per_s": (
        "images/s",
        "GPU throughput of one execution (dense | masked | sparse) at settings.batch",
    ),
    "read_bandwidth": (
        "GB/s",
        "streaming read bandwidth of torch.sum over an array far larger than the cache "
        "(method: 1 thread | all cores)",
    ),
    "gemm_rate": (
        "GMAdds/s",
        "fp32 torch.mm rate of large square matrices, 1e9 multiply-adds per second "
        "(method: 1 thread | all cores)",
    ),
    "layer_bytes_per_image": (
        "bytes",
        "bytes the conv, linear and operator layers read or write at batch 1 (weights, all K "
        "kernels, input and output); detail.layers: each layer's bytes and MAdds",
    ),
    "error": ("", "a model whose measurement failed; detail.error says why"),
}


def unit_of(metric: str) -> str:
    return METRICS[metric][0]
