"""Stop signals as one interruption with the exit status shells expect.

Ctrl-C (SIGINT), ``kill`` (SIGTERM) and a closed terminal (SIGHUP) all end a run the same
way: a :class:`KeyboardInterrupt` raised where the run is, so that every layer keeps what it
measured (the timing loops return their complete rounds, the runner stores them, marks the
run 'interrupted' and ends its workers). Which signal it was is remembered, so that the
command exits 128 + its number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP), as a shell
reports a process the signal killed, and never 0 (:class:`dynbench.run.runner.RunInterrupted`).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_received: list[int] = []  # the stop signals this process got, oldest first
_deferring: list[bool] = []  # one entry per open stop_signals_deferred block
_pending: list[int] = []  # a stop signal that arrived inside such a block


def _handler(signum: int, frame: object) -> None:
    _received.append(signum)
    if _deferring:
        _pending.append(signum)
        return
    raise KeyboardInterrupt


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, each stop signal raises KeyboardInterrupt and is remembered."""
    _received.clear()
    _pending.clear()
    previous = {signum: signal.signal(signum, _handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Within the block a stop signal is remembered but raised only when the block ends: a
    record must not be committed to the store and then missed by the run's count and its
    ``--json`` file. (A handler that waits, not a blocked signal mask: the signal may be
    delivered to another of the process's threads.)"""
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
    if _pending and not _deferring:
        _pending.clear()
        raise KeyboardInterrupt


def stopped_by() -> signal.Signals:
    """The first stop signal received (SIGINT when none was: a KeyboardInterrupt raised
    outside :func:`stop_signals_interrupt` comes from Python's own SIGINT handler)."""
    return signal.Signals(_received[0]) if _received else signal.SIGINT
