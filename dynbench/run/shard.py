"""``--shard i/N``: a deterministic 1/N of a suite, for a scheduler's job array.

The unit of work is what the runner measures together: a family (baseline and its variants)
when a measure needs the family, since ratios are only valid between models timed in one
process, otherwise a single model. Units are sorted by their first model's name and dealt
round robin, so every task of the array computes the same split without talking to the
others, and the N shards together hold every unit exactly once.
"""

from __future__ import annotations

from typing import TypeVar

from dynbench.errors import DynbenchError

Unit = TypeVar("Unit")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` with 0 <= i < N (``$SLURM_ARRAY_TASK_ID/N`` of ``--array=0-(N-1)``)."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if n < 1 or not 0 <= i < n:
        raise DynbenchError(
            f"--shard {text!r} is not i/N with 0 <= i < N; e.g. --shard 0/8 ... --shard 7/8 "
            "($SLURM_ARRAY_TASK_ID/8 with #SBATCH --array=0-7)"
        )
    return i, n


def take_shard(units: list[Unit], names: list[str], index: int, count: int) -> list[Unit]:
    """The units of shard ``index`` of ``count``; ``names[k]`` orders ``units[k]``."""
    order = sorted(range(len(units)), key=lambda k: names[k])
    return [units[k] for k in order[index::count]]
