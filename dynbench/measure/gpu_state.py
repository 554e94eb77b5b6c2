"""The GPU's clocks, temperature and power as the throughput record saw them.

A block spread means little without the card's state: a card that heats up and
lowers its clocks between the first model and the last gives every later model
fewer images/s. Read through NVML (``pynvml``, from the nvidia-ml-py package) when it
imports, else through ``nvidia-smi --query-gpu``; where neither answers, the state is
absent and says why. Nothing here changes the card's settings.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

# nvidia-smi --query-gpu fields, and the record's key for each
SMI_FIELDS = {
    "name": "name",
    "driver_version": "driver",
    "clocks.sm": "sm_clock_mhz",
    "clocks.mem": "memory_clock_mhz",
    "temperature.gpu": "temperature_c",
    "power.draw": "power_w",
    "utilization.gpu": "utilization_pct",
    "memory.used": "memory_used_mib",
}
TEXT_KEYS = ("name", "driver")


def parse_nvidia_smi(text: str, index: int = 0) -> dict:
    """The state of GPU ``index`` from ``nvidia-smi --query-gpu=<SMI_FIELDS>
    --format=csv,noheader[,nounits]`` output: numbers as floats (a unit after one is
    dropped), ``[N/A]`` as None."""
    lines = [line for line in text.splitlines() if line.strip()]
    if index >= len(lines):
        raise ValueError(f"nvidia-smi listed {len(lines)} GPU(s), not GPU {index}")
    values = [v.strip() for v in lines[index].split(",")]
    if len(values) != len(SMI_FIELDS):
        raise ValueError(f"nvidia-smi gave {len(values)} fields, expected {len(SMI_FIELDS)}")
    state = {}
    for key, value in zip(SMI_FIELDS.values(), values, strict=True):
        if value.startswith("[") or value in ("N/A", ""):
            state[key] = None
        elif key in TEXT_KEYS:
            state[key] = value
        else:
            state[key] = float(value.split()[0])
    return state


def _throttle_reasons(pynvml, handle) -> str | None:
    """Why the clocks are held down now (NVML's bit mask, e.g. 0x4 power cap, 0x20 SW
    thermal), by whichever of its two names this NVML has; None where neither answers."""
    for name in (
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetCurrentClocksThrottleReasons",
    ):
        try:
            return hex(getattr(pynvml, name)(handle))
        except Exception:  # noqa: BLE001  (absent in this NVML, or not supported by the card)
            continue
    return None


def _nvml_state(index: int) -> dict:
    import pynvml  # noqa: PLC0415  (optional: nvidia-ml-py)

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        driver = pynvml.nvmlSystemGetDriverVersion()
        return {
            "name": name.decode() if isinstance(name, bytes) else name,
            "driver": driver.decode() if isinstance(driver, bytes) else driver,
            "sm_clock_mhz": float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
            "memory_clock_mhz": float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM)),
            "temperature_c": float(
                pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
            ),
            "power_w": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
            "utilization_pct": float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            "memory_used_mib": pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
            "throttle_reasons": _throttle_reasons(pynvml, handle),
        }
    finally:
        pynvml.nvmlShutdown()


def _smi_state(index: int) -> dict:
    query = ",".join(SMI_FIELDS)
    text = subprocess.run(
        ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return parse_nvidia_smi(text, index)


READERS: tuple[tuple[str, Callable[[int], dict]], ...] = (
    ("nvml", _nvml_state),
    ("nvidia-smi", _smi_state),
)


def gpu_state(index: int = 0, readers=READERS) -> dict:
    """The card's state now, with ``source`` saying which reader gave it; where none
    could, ``{"absent": <why each failed>}``."""
    failures = []
    for source, read in readers:
        try:
            return {"source": source, **read(index)}
        except Exception as exc:  # a missing module, binary or driver: try the next one
            failures.append(f"{source}: {type(exc).__name__}: {exc}".strip())
    return {"absent": "; ".join(failures)}
