"""Pinning the allocator: a call that allocates and fills large buffers stops faulting.

glibc's own thresholds move with what the process freed before, so whether an unpinned
process faults depends on its history; the comparison holds the threshold at glibc's
starting value instead, where every large block is mapped afresh."""

import subprocess
import sys

import pytest
import torch

from dynbench.measure.allocator import allocator, pin
from dynbench.measure.timing import inference_call
from dynbench.ops.dyconv import DynamicConv2d
from dynbench.run.rounds import measure_interleaved
from dynbench.run.settings import RoundsSettings

FAULTS = """
import ctypes, resource, sys, torch
from dynbench.measure.allocator import M_MMAP_THRESHOLD, pin
if sys.argv[1] == "pinned":
    assert pin() == "pinned"
else:  # glibc's starting threshold, held fixed: every large block is mapped afresh
    assert ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024)
def call():  # a chain of activations of changing sizes (4-24 MiB), each freed after the next
    x = torch.ones(1 << 20)
    for n in (4, 1, 6, 2, 3, 1):
        x = torch.ones(n << 20) + x.sum()
    return x.sum()
for _ in range(3):
    call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    call()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_call(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_pinned_allocator_keeps_a_large_buffer_mapped():
    if pin() != "pinned":
        pytest.skip("the C library is not glibc")
    assert allocator() == "pinned"
    system = _faults_per_call("mapped")
    assert system > 1000  # thousands of 4 KiB pages mapped afresh a call
    assert _faults_per_call("pinned") < system / 20


def _route_when_timed(allocator_setting: str) -> str:
    """The route a DY-Conv layer takes when the runner times it with ``allocator_setting``:
    512 -> 2048 1x1 at batch 8 (8 x 1,048,576 fp32 kernel elements = 32 MiB, 512 deep, one
    position), a shape where the experts route pays while freed memory is unmapped."""
    torch.manual_seed(0)
    model = DynamicConv2d(512, 2048, 1, num_kernels=4).eval()
    call = inference_call(model, torch.randn(8, 512, 1, 1))
    settings = RoundsSettings(
        allocator=allocator_setting,
        rounds=2,
        warmup=1,
        min_run_time=0.0,
        block_time=0.0,
        ci_target=None,
    )
    measure_interleaved({"dyconv": call}, settings, lambda state: None, [model])
    return model.implementation()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_run_timed_pinned_routes_its_convs_for_memory_kept():
    """Pinning changes no operator by itself: the runner tells the models it times what is
    in force, and with memory kept the mixed route is the faster (routes-pinned.md)."""
    assert _route_when_timed("system") == "fast/experts"
    if pin() != "pinned":
        pytest.skip("the C library is not glibc")
    torch.manual_seed(0)
    untold = DynamicConv2d(512, 2048, 1, num_kernels=4).eval()
    with torch.inference_mode():
        untold(torch.randn(8, 512, 1, 1))
    assert untold.implementation() == "fast/experts"  # a model the runner did not time
    assert _route_when_timed("pinned") == "fast/mixed"
