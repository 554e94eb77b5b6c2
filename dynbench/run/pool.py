"""Size measures of many models on every core: one worker process per core, in order.

Counting parameters and MAdds times nothing, so models can be measured side by
side; a suite of timing measures never comes here (models timed at once would
slow each other down). Each worker builds and measures one group at a time with
one torch thread and hands back its records; the parent receives them in the
order of the groups, so the store and the ``--json`` file come out the same as a
one-process run's, and commits each group's records as they arrive.

Workers are forked: they inherit the suite, the targets (user models included)
and the registry without pickling them; only group indices go out and records
come back. They ignore SIGINT and SIGHUP (Ctrl-C and a closed terminal reach the whole
process group): the parent, interrupted, keeps what it stored and terminates them as it
leaves the pool.
A worker killed by a signal (the OOM killer, a segfault) breaks the pool: the parent
still receives every group that came back and then raises :class:`WorkerDied`
naming the groups that did not, instead of waiting for them forever. The parent forks
with its stop signals blocked: a worker starts with the parent's handlers, and a SIGTERM
that reached it before it set its own (the broken pool terminating a worker still starting)
would raise KeyboardInterrupt there and print a traceback; blocked, it waits until the
worker's own handlers are set. A parent killed
by a signal it cannot catch (SIGKILL, as the OOM killer sends) takes its workers with
it: on Linux the kernel sends each worker SIGKILL when the parent dies
(``PR_SET_PDEATHSIG``); elsewhere a watchdog thread in each worker ends it once the
parent is gone. Without that, workers of hundreds of MB each would run on, orphaned.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import torch

from dynbench.errors import DynbenchError
from dynbench.results.record import Record
from dynbench.run.interrupt import STOP_SIGNALS

Stamped = tuple[Record, dict]  # a record and the settings it was measured with
GroupWork = Callable[[int], list[Stamped]]

_work: GroupWork | None = None  # set before the fork, inherited by the workers


def check_jobs(jobs: int, cores: int) -> None:
    """More size workers than cores gain nothing and each holds its models in memory."""
    if not 1 <= jobs <= cores:
        raise DynbenchError(f"--jobs {jobs} is out of range; accepted: 1 to {cores} (the cores)")


class WorkerDied(Exception):
    """A worker process ended without handing back its group; ``lost`` are the indices of
    the groups whose records never came (the dead worker's and those the broken pool dropped)."""

    def __init__(self, lost: list[int]) -> None:
        super().__init__(f"a worker process died; {len(lost)} group(s) not measured")
        self.lost = lost


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies
WATCHDOG_PERIOD_S = 1.0


def _start_worker(parent: int) -> None:
    for signum in (signal.SIGINT, signal.SIGHUP):  # the parent's to handle: it ends us
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's: terminate() ends it
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the fork
    _die_with(parent)
    torch.set_num_threads(1)


def _die_with(parent: int) -> None:
    """End this process when ``parent`` dies, whatever killed it."""
    if not _death_signal(signal.SIGKILL):
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)


def _death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCHDOG_PERIOD_S)
    os._exit(1)


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
def _stop_signals_blocked() -> Iterator[None]:
    """Hold the stop signals in this thread: the processes it forks start with them held (and
    so does a thread it starts), the parent receives one that came meanwhile on the way out."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def in_workers(
    work: GroupWork, count: int, jobs: int
) -> Iterator[Iterator[tuple[int, list[Stamped]]]]:
    """(i, ``work(i)``) for i in range(count) on ``jobs`` forked processes, in order of i."""
    global _work
    _work = work
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    )
    try:
        with _stop_signals_blocked():  # the first submit forks the workers
            futures = [pool.submit(_run, index) for index in range(count)]
        yield _in_order(futures)
    except BaseException:
        _terminate(pool)
        raise
    finally:
        pool.shutdown()
        _work = None
