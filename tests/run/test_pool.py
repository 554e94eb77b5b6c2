import multiprocessing
import os
import signal
import time

import pytest

from dynbench.run import pool
from dynbench.run.interrupt import stop_signals_interrupt
from dynbench.run.pool import WorkerDied, in_workers

START_DELAY_S = 1.0


def test_a_worker_terminated_while_starting_dies_quietly(monkeypatch, capfd):
    """A worker inherits the parent's handler that turns SIGTERM into KeyboardInterrupt; one
    terminated before it sets its own (here, held up on its way there) must not print that
    exception's traceback: the signal waits, held, and then ends it as SIGTERM."""
    start = pool._start_worker

    def slow_start(parent: int) -> None:
        time.sleep(START_DELAY_S)
        start(parent)

    monkeypatch.setattr(pool, "_start_worker", slow_start)
    with (
        stop_signals_interrupt(),
        pytest.raises(WorkerDied) as died,
        in_workers(lambda index: [], 1, 1) as results,
    ):
        (worker,) = multiprocessing.active_children()
        os.kill(worker.pid, signal.SIGTERM)
        list(results)
    assert died.value.lost == [0]
    assert _exit_code(worker) == -signal.SIGTERM
    assert capfd.readouterr().err == ""


def _exit_code(process: multiprocessing.Process) -> int | None:
    """The pool's own thread reaps its workers too: poll until one of us has."""
    deadline = time.monotonic() + 10
    while process.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return process.exitcode


def test_the_parent_holds_no_stop_signal_after_forking():
    with in_workers(lambda index: [], 2, 2) as results:
        assert list(results) == [(0, []), (1, [])]
    held = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert not held & {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
