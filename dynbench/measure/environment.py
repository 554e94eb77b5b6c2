"""Where a measurement was taken: recorded beside every row of the results store."""

from __future__ import annotations

import datetime as dt
import functools
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

import dynbench


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


def environment() -> dict[str, object]:
    """Versions, hardware and threads in force now."""
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
        "argv": " ".join(sys.argv[1:]) if sys.argv else "",
    }
