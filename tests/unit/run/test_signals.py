"""SIGTERM and SIGHUP become a KeyboardInterrupt carrying the signal, once."""

from __future__ import annotations

import os
import signal
import time

import pytest

from harness.run.signals import Terminated, interrupt_name, signals_as_interrupts


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_raises_terminated_once(sig: int, code: int) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(Terminated) as caught, signals_as_interrupts():
        os.kill(os.getpid(), sig)
        time.sleep(1)
    assert caught.value.exit_code == code
    assert isinstance(caught.value, KeyboardInterrupt)
    assert interrupt_name(caught.value) == signal.Signals(sig).name
    assert signal.getsignal(sig) == before


def test_later_signals_are_ignored_while_cleaning_up() -> None:
    with signals_as_interrupts():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except Terminated:
            os.kill(os.getpid(), signal.SIGTERM)  # a second one must not cut cleanup short
            time.sleep(0.1)
    assert interrupt_name(KeyboardInterrupt()) == "Ctrl-C"
