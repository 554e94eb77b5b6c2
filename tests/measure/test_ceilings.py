"""The machine's ceilings on tiny sizes: positive, finite, of a sane magnitude."""

import math

from dynbench.measure.ceilings import gemm_rate, read_bandwidth
from dynbench.measure.environment import all_cores


def test_read_bandwidth_of_a_small_array_is_a_plausible_rate():
    ceiling = read_bandwidth(1 << 20, threads=1, min_run_time=0.05)
    assert ceiling.work == 1 << 20 and ceiling.threads == 1 and ceiling.calls >= 1
    assert math.isfinite(ceiling.rate) and ceiling.median_s > 0
    # any CPU torch runs on reads 1 MiB at more than 100 MB/s and less than 10 TB/s
    assert 1e8 < ceiling.rate < 1e13
    assert ceiling.rate == ceiling.work / ceiling.median_s


def test_gemm_rate_of_small_matrices_is_a_plausible_rate():
    ceiling = gemm_rate(64, threads=all_cores(), min_run_time=0.05)
    assert ceiling.work == 64**3 and ceiling.threads == all_cores()
    # between 10 MMAdds/s and 100 TMAdds/s for any CPU
    assert math.isfinite(ceiling.rate) and 1e7 < ceiling.rate < 1e14
