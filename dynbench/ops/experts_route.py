"""Which fast route a kernel-mixing conv takes: the rule :func:`experts_pay` and the
:class:`RouteSetting` the runner gives the operators (no process-wide switch).

A kernel-mixing conv (CondConv, DY-Conv, ODConv) computes the same function two ways:
``mixed`` forms each sample's kernel and runs one batch-folded conv; ``experts`` runs the
K kernels as one dense conv and mixes the outputs per sample. Which is faster depends on
the layer's shape, the batch and the allocator, as measured in reports/batch-sweep/.
"""

from __future__ import annotations

from dataclasses import dataclass

# The experts route's rule (experts_pay), set from the measured crossovers of the two routes
# on the layer shapes of the registered models, in fp32 on the CPU; the measurements are in
# reports/batch-sweep/routes.md and, with freed memory kept mapped, routes-pinned.md.
# KERNEL_PASS_MADDS: what forming and streaming back one element of a per-sample kernel costs
# the mixed route, in multiply-adds. KERNELS_OUT_OF_CACHE: glibc's mmap ceiling in bytes, the
# size of the batch's kernels from which the mixed route's buffers are mapped afresh on every
# call under glibc's default policy. MIN_EXPERTS_DEPTH: the per-sample GEMM depth below which
# the mixed route's grouped conv stays the faster one.
KERNEL_PASS_MADDS = 256
KERNELS_OUT_OF_CACHE = 32 << 20
MIN_EXPERTS_DEPTH = 512


@dataclass(frozen=True)
class RouteSetting:
    """What the route rule is told about the process the operators run in; the runner
    gives it to a model's operators (:func:`dynbench.ops.kernel_mixing.set_route_setting`)
    once it knows, and each timing record keeps ``detail.allocator`` and the routes taken.

    ``memory_kept``: freed memory stays mapped (:func:`dynbench.measure.allocator.pin` took
    effect); then the experts route never pays (reports/batch-sweep/routes-pinned.md).
    """

    memory_kept: bool = False


def experts_pay(
    batch: int,
    num_kernels: int,
    positions: int,
    kernel_elements: int,
    depth: int,
    kept: bool = False,
    element_size: int = 4,
    device_type: str = "cpu",
) -> bool:
    """Whether :meth:`KernelDynamicConv.experts_conv` beats the mixed route at this shape.

    Per kernel element and sample, the mixed route computes P MAdds (P output positions)
    plus the K of forming the kernel, and pays for writing that kernel and reading it
    back; the experts route computes K P and forms nothing. So the experts route pays
    only when (K - 1) P is below the cost of that kernel pass (``KERNEL_PASS_MADDS``),
    which is large only once the batch's kernels (batch x ``kernel_elements`` x
    ``element_size`` bytes) reach ``KERNELS_OUT_OF_CACHE``, and only for per-sample GEMMs
    at least ``MIN_EXPERTS_DEPTH`` deep (``depth`` = C_in / groups x k x k). Depthwise
    and early, high-resolution layers never qualify. At batch <= K the experts route
    does more work for no saving: never.

    The size threshold is glibc's mmap ceiling, a number of bytes: past it, the mixed
    route's batch of kernels is served by fresh mappings that fault on every call, the
    saving the experts route buys. That is a property of the CPU's allocator: on any other
    device (``device_type``) nothing was measured and the rule says never. With freed memory
    kept mapped (``kept``, :attr:`RouteSetting.memory_kept`) the mixed route was the faster
    on every measured shape and batch (reports/batch-sweep/routes-pinned.md): never.
    """
    return (
        device_type == "cpu"
        and not kept
        and batch > num_kernels
        and (num_kernels - 1) * positions <= KERNEL_PASS_MADDS
        and batch * kernel_elements * element_size >= KERNELS_OUT_OF_CACHE
        and depth >= MIN_EXPERTS_DEPTH
    )
