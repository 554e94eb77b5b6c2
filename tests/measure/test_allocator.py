"""Pinning the allocator: a call that allocates and fills large buffers stops faulting.

glibc's own thresholds move with what the process freed before, so whether an unpinned
process faults depends on its history; the comparison holds the threshold at glibc's
starting value instead, where every large block is mapped afresh."""

import subprocess
import sys

import pytest

from dynbench.measure.allocator import allocator, pin
from dynbench.ops import base

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
    assert base._MEMORY["kept"]  # the route rule knows: the experts route no longer pays
    system = _faults_per_call("mapped")
    assert system > 1000  # thousands of 4 KiB pages mapped afresh a call
    assert _faults_per_call("pinned") < system / 20
