"""Where a measurement was taken: recorded beside every row of the results store."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

import dynbench
from dynbench.redact import redact


def all_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS reports one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_mhz() -> float | None:
    """The current clock of the CPUs in MHz (mean over cores), where the OS tells it.

    A clock that moves between two timings (power saving, turbo, a throttled host) moves
    every ratio measured across it; recorded before and after each timed family.
    """
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq").read_text()
        return round(int(khz) / 1000, 1)
    except (OSError, ValueError):
        pass
    try:
        values = [
            float(line.split(":", 1)[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        ]
    except (OSError, ValueError):
        return None
    return round(sum(values) / len(values), 1) if values else None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the dynbench checkout, if it runs from one."""
    root = Path(dynbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def gpu_name() -> str | None:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def memory_gib() -> int | None:
    """Total memory rounded to GiB: the kernel's reserve moves MemTotal by a few MiB between
    boots, which must not make a new machine."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (OSError, ValueError, AttributeError):
        return None


@functools.lru_cache(maxsize=1)
def gpu_driver() -> str | None:
    """The NVIDIA driver version (nvidia-smi), where there is a CUDA GPU."""
    if not torch.cuda.is_available() or torch.version.cuda is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


# what identifies a machine: hardware and the torch build, never a reading such as the clock
MACHINE_FIELDS = ("cpu", "cores", "memory_gib", "gpu", "gpu_driver", "torch_build")


def fingerprint(fields: dict[str, object]) -> str:
    """12 hex digits of a hash of the identifying fields, the same on every run."""
    stable = {k: fields.get(k) for k in MACHINE_FIELDS}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:12]


def machine() -> dict[str, object]:
    """This machine's identity: CPU model, logical cores, memory, GPU and driver, the torch
    build (version, CUDA or CPU); ``fingerprint`` groups the records of one machine."""
    fields: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "gpu": gpu_name(),
        "gpu_driver": gpu_driver(),
        "torch_build": f"{torch.__version__} cuda {torch.version.cuda or 'none'}",
    }
    return {**fields, "fingerprint": fingerprint(fields)}


def environment(machine_label: str | None = None) -> dict[str, object]:
    """Versions, hardware and threads in force now, the machine's identity and the user's
    name for it (``--machine-label``); the command line with its credentials redacted."""
    return {
        "dynbench": dynbench.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "gpu": gpu_name(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "git_commit": git_commit(),
        "hostname": socket.gethostname(),
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": redact(" ".join(sys.argv[1:])) if sys.argv else "",
        "machine": machine(),
        "machine_label": machine_label,
    }
