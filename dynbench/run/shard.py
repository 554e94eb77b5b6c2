"""``--shard i/N``: a deterministic 1/N of a suite, for a scheduler's job array.

The unit of work is what the runner measures together: a family (baseline and its variants)
when a measure needs the family, since ratios are only valid between models timed in one
process, otherwise a single model. Units are sorted by their first model's name and dealt
round robin, so every task of the array computes the same split without talking to the
others, and the N shards together hold every unit exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from dynbench.errors import DynbenchError

Unit = TypeVar("Unit")


def parse_shard(text: str, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """``"i/N"`` with 0 <= i < N (``$SLURM_ARRAY_TASK_ID/N`` of ``--array=0-(N-1)``, or
    ``$JOB_COMPLETION_INDEX/N`` of a Kubernetes Indexed Job), or ``"auto"``: the place of
    this task in the SLURM job array it runs in (:func:`slurm_shard`)."""
    if text == "auto":
        return slurm_shard(environ)
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if n < 1 or not 0 <= i < n:
        raise DynbenchError(
            f"--shard {text!r} is not i/N with 0 <= i < N, nor auto; e.g. --shard 0/8 ... "
            "--shard 7/8 ($SLURM_ARRAY_TASK_ID/8 with #SBATCH --array=0-7), or --shard auto"
        )
    return i, n


SLURM_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")


def slurm_shard(environ: Mapping[str, str]) -> tuple[int, int]:
    """(i, N) of this task in its SLURM job array: N = ``SLURM_ARRAY_TASK_COUNT`` and i the
    task's rank, ``(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP``, so
    ``--array=1-8`` and ``--array=0-14:2`` shard as ``--array=0-7`` does. An array given as a
    list of ids with uneven gaps has no rank SLURM tells: refused, like running outside one."""
    missing = [name for name in SLURM_VARIABLES if name not in environ]
    if missing:
        raise DynbenchError(
            f"--shard auto needs a SLURM job array; not set here: {', '.join(missing)}; "
            "submit with sbatch --array=0-(N-1), or give --shard i/N (e.g. "
            "$JOB_COMPLETION_INDEX/N in a Kubernetes Indexed Job)"
        )
    try:
        task, count = (int(environ[name]) for name in SLURM_VARIABLES)
        first = int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
        step = int(environ.get("SLURM_ARRAY_TASK_STEP", 1))
    except ValueError:
        values = ", ".join(f"{name}={environ[name]!r}" for name in SLURM_VARIABLES)
        raise DynbenchError(f"--shard auto: {values} are not whole numbers") from None
    rank, off_step = divmod(task - first, step) if step > 0 else (-1, 0)
    if off_step or not 0 <= rank < count:
        raise DynbenchError(
            f"--shard auto: task {task} of an array of {count} (first {first}, step {step}) "
            "has no rank from 0 to N-1; use a range array such as --array=0-7, or --shard i/N"
        )
    return rank, count


def take_shard(units: list[Unit], names: list[str], index: int, count: int) -> list[Unit]:
    """The units of shard ``index`` of ``count``; ``names[k]`` orders ``units[k]``."""
    order = sorted(range(len(units)), key=lambda k: names[k])
    return [units[k] for k in order[index::count]]
