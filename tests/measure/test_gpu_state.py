"""The GPU state reader: nvidia-smi's output parsed, and the readers' fallback order."""

import pytest

from dynbench.measure.gpu_state import SMI_FIELDS, gpu_state, parse_nvidia_smi

# as nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader printed it on an H200
# (reports/gpu/gpu-state.csv), then the same query with nounits
WITH_UNITS = "NVIDIA H200, 580.159.04, 1980 MHz, 3201 MHz, 39, 126.48 W, 6 %, 0 MiB\n"
NO_UNITS = "NVIDIA H200, 580.159.04, 345, 3201, 35, [N/A], 0, 12\n"


def test_a_line_with_units_is_parsed_into_numbers():
    state = parse_nvidia_smi(WITH_UNITS)
    assert state == {
        "name": "NVIDIA H200",
        "driver": "580.159.04",
        "sm_clock_mhz": 1980.0,
        "memory_clock_mhz": 3201.0,
        "temperature_c": 39.0,
        "power_w": 126.48,
        "utilization_pct": 6.0,
        "memory_used_mib": 0.0,
    }


def test_the_second_gpu_and_a_missing_value():
    state = parse_nvidia_smi(WITH_UNITS + NO_UNITS, index=1)
    assert state["sm_clock_mhz"] == 345.0 and state["power_w"] is None
    assert state["memory_used_mib"] == 12.0


@pytest.mark.parametrize(
    "text, message",
    [("", "listed 0 GPU"), ("NVIDIA H200, 580.159.04, 1980\n", f"expected {len(SMI_FIELDS)}")],
)
def test_output_that_does_not_fit_is_an_error(text, message):
    with pytest.raises(ValueError, match=message):
        parse_nvidia_smi(text)


def test_the_first_reader_that_answers_gives_the_state_else_why_none_did():
    def broken(index):
        raise FileNotFoundError("nvidia-smi")

    def answers(index):
        return {"sm_clock_mhz": 1980.0 + index}

    assert gpu_state(1, (("nvml", broken), ("nvidia-smi", answers))) == {
        "source": "nvidia-smi",
        "sm_clock_mhz": 1981.0,
    }
    absent = gpu_state(0, (("nvml", broken), ("nvidia-smi", broken)))
    assert absent == {
        "absent": "nvml: FileNotFoundError: nvidia-smi; nvidia-smi: FileNotFoundError: nvidia-smi"
    }


def test_on_a_machine_without_a_gpu_the_state_is_absent_with_reasons():
    state = gpu_state()  # CI: no NVML library and no nvidia-smi (or no GPU behind them)
    if "absent" in state:
        assert state["absent"].startswith("nvml: ") and "; nvidia-smi: " in state["absent"]
    else:  # a machine with a GPU
        assert state["source"] in ("nvml", "nvidia-smi") and state["name"]
