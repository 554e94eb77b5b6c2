"""Stop signals become one KeyboardInterrupt, remembered by name; inside a deferred block
(a record being stored and counted) the interrupt waits for the block's end."""

from __future__ import annotations

import os
import signal

import pytest

from dynbench.run.interrupt import stop_signals_deferred, stop_signals_interrupt, stopped_by


def test_a_stop_signal_interrupts_and_is_named():
    with pytest.raises(KeyboardInterrupt), stop_signals_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)  # a bytecode boundary after delivery
    assert stopped_by() == signal.SIGTERM


def test_a_deferred_block_finishes_before_the_interrupt():
    done = []
    with pytest.raises(KeyboardInterrupt), stop_signals_interrupt():
        with stop_signals_deferred():
            os.kill(os.getpid(), signal.SIGHUP)
            done.append("stored")
            done.append("counted")
        done.append("never")
    assert done == ["stored", "counted"]
    assert stopped_by() == signal.SIGHUP
