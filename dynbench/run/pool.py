"""Size measures of many models on every core: one worker process per core, in order.

Counting parameters and MAdds times nothing, so models can be measured side by
side; a suite of timing measures never comes here (models timed at once would
slow each other down). Each worker builds and measures one group at a time with
one torch thread and hands back its records; the parent receives them in the
order of the groups, so the store and the ``--json`` file come out the same as a
one-process run's, and commits each group's records as they arrive.

Workers are forked: they inherit the suite, the targets (user models included)
and the registry without pickling them; only group indices go out and records
come back. They ignore SIGINT (Ctrl-C reaches the whole process group): the
parent, interrupted, keeps what it stored and terminates them as it leaves the pool.
A worker killed by a signal (the OOM killer, a segfault) breaks the pool: the parent
still receives every group that came back and then raises :class:`WorkerDied`
naming the groups that did not, instead of waiting for them forever.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import torch

from dynbench.results.record import Record

Stamped = tuple[Record, dict]  # a record and the settings it was measured with
GroupWork = Callable[[int], list[Stamped]]

_work: GroupWork | None = None  # set before the fork, inherited by the workers


class WorkerDied(Exception):
    """A worker process ended without handing back its group; ``lost`` are the indices of
    the groups whose records never came (the dead worker's and those the broken pool dropped)."""

    def __init__(self, lost: list[int]) -> None:
        super().__init__(f"a worker process died; {len(lost)} group(s) not measured")
        self.lost = lost


def _start_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's: terminate() ends it
    torch.set_num_threads(1)


def _run(index: int) -> list[Stamped]:
    assert _work is not None
    return _work(index)


def _in_order(futures: list[Future]) -> Iterator[tuple[int, list[Stamped]]]:
    """(index, records) of each group that came back, in order; then :class:`WorkerDied`
    if any did not (a worker's own exception is raised as itself)."""
    lost = []
    for index, future in enumerate(futures):
        try:
            made = future.result()
        except BrokenProcessPool:
            lost.append(index)
            continue
        yield index, made
    if lost:
        raise WorkerDied(lost)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers at once: they ignore SIGINT, and ``shutdown`` alone would let each
    finish its group first (the executor has no public call for this before Python 3.14)."""
    processes = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


@contextmanager
def in_workers(
    work: GroupWork, count: int, jobs: int
) -> Iterator[Iterator[tuple[int, list[Stamped]]]]:
    """(i, ``work(i)``) for i in range(count) on ``jobs`` forked processes, in order of i."""
    global _work
    _work = work
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker)
    try:
        yield _in_order([pool.submit(_run, index) for index in range(count)])
    except BaseException:
        _terminate(pool)
        raise
    finally:
        pool.shutdown()
        _work = None
