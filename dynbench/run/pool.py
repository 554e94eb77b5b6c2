"""Size measures of many models on every core: one worker process per core, in order.

Counting parameters and MAdds times nothing, so models can be measured side by
side; a suite of timing measures never comes here (models timed at once would
slow each other down). Each worker builds and measures one group at a time with
one torch thread and hands back its records; the parent receives them in the
order of the groups (``imap``), so the store and the ``--json`` file come out the
same as a one-process run's, and commits each group's records as they arrive.

Workers are forked: they inherit the suite, the targets (user models included)
and the registry without pickling them; only group indices go out and records
come back. They ignore SIGINT (Ctrl-C reaches the whole process group): the
parent, interrupted, keeps what it stored and terminates them as it leaves the pool.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from dynbench.results.record import Record

Stamped = tuple[Record, dict]  # a record and the settings it was measured with
GroupWork = Callable[[int], list[Stamped]]

_work: GroupWork | None = None  # set before the fork, inherited by the workers


def _start_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's: terminate() ends it
    torch.set_num_threads(1)


def _run(index: int) -> list[Stamped]:
    assert _work is not None
    return _work(index)


@contextmanager
def in_workers(work: GroupWork, count: int, jobs: int) -> Iterator[Iterator[list[Stamped]]]:
    """``work(i)`` for i in range(count) on ``jobs`` forked processes, results in order of i."""
    global _work
    _work = work
    try:
        with multiprocessing.get_context("fork").Pool(jobs, _start_worker) as pool:
            yield pool.imap(_run, range(count))
    finally:
        _work = None
