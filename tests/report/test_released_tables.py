"""The rows of the tables beside the released code, from constructed comparisons."""

from dynbench.measure.gpu_rounds import GpuTimed
from dynbench.measure.side_by_side import (
    LayerPairs,
    OverheadComparison,
    Side,
    compare_gpu,
)
from dynbench.report import released_tables as tables


def _timed(blocks, peak=None):
    return GpuTimed(blocks, peak=peak)


def test_a_gpu_row_compares_throughput_ratio_and_memory():
    static = _timed([100.0, 100.0, 101.0])
    ours, theirs = (
        _timed([200.0, 201.0, 200.0], 3 * 2**30),
        _timed([250.0, 250.0, 250.0], 4 * 2**30),
    )
    row = tables.gpu_row("resnet50", "odconv_1x", compare_gpu(ours, theirs, static, 2000))
    assert row == (
        "| resnet50 | odconv_1x | 8,000 / 10,000 | 0.400 / 0.500 | 1.250 | 4.00 / 3.00 | "
        "0.0% / 0.5% | yes |"
    )
    slower = tables.gpu_row(
        "resnet50", "dcd", compare_gpu(theirs, ours, _timed([100.0, 110.0, 100.0]), 2000)
    )
    assert slower.endswith("| 0.800 | 3.00 / 4.00 | 0.5% / 0.0% | no (spread > 2%) |")
    off_cuda = compare_gpu(_timed([200.0]), _timed([250.0]), _timed([100.0]), 2000)
    assert "| - / - |" in tables.gpu_row("resnet18", "dcd", off_cuda)


def test_an_overhead_row_says_ratios_quotient_verdict_times_spreads_and_faults():
    c = OverheadComparison(
        ours_ratio=(1.0512, 1.0401, 1.0633),
        released_ratio=(1.2, 1.19, 1.2149),
        quotient=0.256,
        quotient_interval=(0.2049, 0.31),
        verdict="yes",
        ours=Side(0.00512, 0.0291, 0.4),
        released=Side(0.0061, 0.0853, 3524.2),
    )
    assert tables.overhead_row("resnet18", "odconv_1x", c) == (
        "| resnet18 | odconv_1x | 1.200 [1.190, 1.215] | 1.051 [1.040, 1.063] | 0.26 "
        "[0.20, 0.31] | yes | 6.10 / 5.12 | 8.5% / 2.9% | 3524 / 0 |"
    )


def test_a_layer_row_sums_per_kind():
    pairs = LayerPairs(8, 0.00123, 0.00131, -0.00001, 0.9412, 0.021, 0.153)
    assert tables.layer_row("resnet18", "dyconv_4x", "3x3", pairs) == (
        "| resnet18 | dyconv_4x | 3x3 | 8 | 1.31 | 1.23 | -10.0 us | 0.941 | 2.1% [15.3%] |"
    )


def test_tables_have_one_separator_per_column_and_op_kind_rows_every_kind():
    for columns in (
        tables.OVERHEAD_COLUMNS,
        tables.LAYER_COLUMNS,
        tables.GPU_COLUMNS,
        tables.OP_KIND_COLUMNS,
    ):
        header, separator, row = tables.table(columns, ["| r |"])
        assert header == columns and row == "| r |"
        assert separator.count("---") == columns.count(" | ") + 1
        assert separator.startswith("| --- | ") and separator.endswith(" | --- |")
    assert tables.table(tables.OVERHEAD_COLUMNS, [])[1] == "| --- " * 8 + "| --- |"
    times = {"conv": 1.234, "kernel mix": 0.5, "other ops": 0.25, "outside ops": 0.1,
             "forward": 2.084}  # fmt: skip
    assert tables.op_kind_row("resnet18", "released dcd", times) == (
        "| resnet18 | released dcd | 1.23 | 0.50 | 0.25 | 0.10 | 2.08 |"
    )


def test_the_method_lines_say_the_settings_and_the_clock():
    line = tables.gpu_method(10, 5, cuda_events=True)
    assert line.startswith("each model warmed until two blocks of 10 calls agree within 2% ")
    assert "then 5 rounds of one block each, shuffled (CUDA events);" in line
    assert "(wall clock);" in tables.gpu_method(1, 2, cuda_events=False)
    assert set(tables.METHODS) == {"profile", "layers", "time"}
    assert "target <= 0.9" in tables.METHODS["time"]
