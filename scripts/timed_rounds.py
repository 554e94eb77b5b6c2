"""The one-process timing the comparison scripts share.

Each script (``odconv-before-after.py``, ``spatial-before-after.py``, ``odconv-overhead.py``,
``mask-unit-cost.py``) times its models with
``dynbench.measure.timing.interleaved`` (one turn per model per round, in a shuffled order)
and opens its table with how the rounds went; this module does both the same way for all.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from dynbench.measure.timing import Interleaved, interleaved, load_average


def add_round_options(parser: argparse.ArgumentParser) -> None:
    """``--rounds`` and ``--min-run-time``, as every comparison script takes them."""
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--min-run-time", type=float, default=3.0)


def time_rounds(
    label: str, calls: dict[str, Callable[[], object]], args: argparse.Namespace
) -> tuple[Interleaved, str]:
    """``calls`` timed interleaved (3 warm-up rounds, then ``args.rounds`` rounds at least and
    ``args.min_run_time`` seconds per call at least), with a progress line on stderr; and
    the summary the table opens with: rounds, seconds, load before and after."""
    load_before, start = load_average(), time.perf_counter()
    result = interleaved(
        calls,
        args.rounds,
        args.min_run_time,
        warmup=3,
        on_round=lambda done, total: print(
            f"\r{label}: round {done}/{total}", end="", file=sys.stderr, flush=True
        ),
    )
    print(file=sys.stderr)
    summary = (
        f"{result.rounds} rounds in {time.perf_counter() - start:.0f} s, "
        f"load {load_before:.2f} -> {load_average():.2f}"
    )
    return result, summary
