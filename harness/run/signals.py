"""SIGTERM and SIGHUP end a job the way Ctrl-C does.

A cancelled CI job sends SIGTERM, a closed terminal SIGHUP; Python's default for both is to
die at once, leaving the step running on the phone, the run ``running`` in the store and the
lease held. :func:`signals_as_interrupts` (enabled by the CLI, never by library code) turns
them into :class:`Terminated`, a :class:`KeyboardInterrupt`, so they unwind through the same
path as Ctrl-C: the runner kills the step on the phone, stores the run ``interrupted`` with
the running step's partial output, and the lease is released. The CLI exits 128 + N.
Later signals are ignored while that cleanup runs (a second SIGTERM must not cut it short;
SIGKILL still can).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from harness.cancel import Cancelled

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process received ``signum`` (SIGTERM or SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def signals_as_interrupts(signums: tuple[int, ...] = HANDLED) -> Iterator[None]:
    """Within the block, the first of ``signums`` raises :class:`Terminated` in the main
    thread; later ones are ignored. Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if fired:
            return
        fired.append(signum)
        raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def interrupt_name(exc: BaseException) -> str:
    """``SIGTERM``/``SIGHUP`` for a :class:`Terminated` (or a worker's
    :class:`~harness.cancel.Cancelled` by one), ``Ctrl-C`` otherwise."""
    return exc.name if isinstance(exc, Terminated | Cancelled) else "Ctrl-C"


__all__ = ["HANDLED", "Terminated", "interrupt_name", "signals_as_interrupts"]
