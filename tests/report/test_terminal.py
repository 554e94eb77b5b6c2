"""What a run prints: a long size table only with --verbose."""

from rich.console import Console

from dynbench.report.terminal import MAX_SIZE_ROWS, print_summary
from tests.report.stores import frame, record


def _printed(rows, verbose):
    console = Console(record=True, width=200)
    print_summary(console, rows, "published", verbose)
    return console.export_text()


def test_a_long_size_table_is_one_line_unless_verbose():
    many = frame([record(f"m{k}", "params", 1000.0 + k, "count") for k in range(MAX_SIZE_ROWS + 1)])
    short = _printed(many, verbose=False)
    assert short.strip().splitlines() == [
        "suite published: sizes of 13 models stored; 'dynbench report' shows them (or run with "
        "--verbose)"
    ]
    assert "m12" in _printed(many, verbose=True)
    few = frame([record("m0", "params", 1000.0, "count")])
    assert "m0" in _printed(few, verbose=False)
