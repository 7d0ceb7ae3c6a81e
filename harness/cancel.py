"""Cooperative cancellation of a worker thread that talks to a phone.

A ``harness bench`` runs one worker thread per phone; Ctrl-C and SIGTERM reach only the main
thread. The worker must then stop what it does on its phone (kill the step, store the run
``interrupted``, release the lease) through the same ``except KeyboardInterrupt`` paths a
single ``harness run`` takes in its main thread.

Raising an exception in another thread asynchronously (``PyThreadState_SetAsyncExc``) cannot
do that safely: it lands at any bytecode, also inside the standard library between a lock's
acquire and its ``try`` (seen: inside ``importlib._bootstrap``, leaving a module lock held,
and every thread that imported after it hung for good). So cancellation here is cooperative:

* the worker runs inside a :class:`Scope` (:func:`scope`, a thread-local);
* :meth:`Scope.cancel`, called by the main thread, sets the scope's flag and shuts down every
  adb socket the worker has open (:func:`register`, called where harness connects to the adb
  server), so a worker blocked in a read or write on its phone wakes at once;
* the worker raises :class:`Cancelled` (a :class:`KeyboardInterrupt`) itself, at a point of
  harness's own code: where a connection is opened, where a socket failure becomes an error
  (:func:`check`), and in :func:`sleep`;
* it is raised once per scope. The clean-up that follows (kill the step on the phone, read
  the temperatures, release the lease) opens new connections and must not be cancelled in
  turn; each of those commands has a time-out of its own.

Outside a scope (the main thread of ``harness run``, helper threads) every function here is
a no-op, and :func:`sleep` is :func:`time.sleep`.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # every command imports this module (harness.run.signals); only the
    import socket  # adb ones need socket, and a registered socket means it is loaded


class Cancelled(KeyboardInterrupt):
    """Raised in a worker whose scope was cancelled; ``name`` says by what (``Ctrl-C``,
    ``SIGTERM``, ...)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Scope:
    """The cancellation state of one worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._reason: str | None = None
        self._raised = False

    @property
    def cancelled(self) -> bool:
        return self._reason is not None

    def cancel(self, reason: str) -> None:
        """Mark the scope cancelled and wake its thread out of any adb socket it blocks in
        (``shutdown``: its read returns end-of-file, its write fails; the socket stays the
        worker's to close)."""
        with self._lock:
            if self._reason is not None:
                return
            self._reason = reason
            sockets = list(self._sockets)
        if not sockets:
            return
        import socket  # loaded already: the sockets are its objects

        for sock in sockets:
            with contextlib.suppress(OSError):  # closed already, or never connected
                sock.shutdown(socket.SHUT_RDWR)

    def register(self, sock: socket.socket) -> None:
        """``sock`` is shut down when the scope is cancelled (a socket closed and dropped
        meanwhile is forgotten: the set holds it weakly)."""
        with self._lock:
            self._sockets.add(sock)

    def check(self) -> None:
        """Raise :class:`Cancelled` once, the first time this is called after
        :meth:`cancel`."""
        with self._lock:
            if self._reason is None or self._raised:
                return
            self._raised = True
            reason = self._reason
        raise Cancelled(reason)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, cut short (by :class:`Cancelled`) when the scope is
        cancelled."""
        deadline = time.monotonic() + max(seconds, 0.0)
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _SLEEP_SLICE_S))


_SLEEP_SLICE_S = 0.05  # how soon a sleeping worker sees its cancellation
_local = threading.local()


def current() -> Scope | None:
    """The scope of the calling thread, if any."""
    found: Scope | None = getattr(_local, "scope", None)
    return found


@contextlib.contextmanager
def scope(s: Scope) -> Iterator[Scope]:
    """Run the block of the calling thread inside ``s``."""
    previous = current()
    _local.scope = s
    try:
        yield s
    finally:
        _local.scope = previous


def check() -> None:
    """:meth:`Scope.check` of the calling thread's scope."""
    s = current()
    if s is not None:
        s.check()


def register(sock: socket.socket) -> None:
    """:meth:`Scope.register` in the calling thread's scope; a connection opened in a
    cancelled scope that has not raised yet raises :class:`Cancelled` (closing ``sock``)."""
    s = current()
    if s is None:
        return
    s.register(sock)
    try:
        s.check()
    except Cancelled:
        sock.close()
        raise


def sleep(seconds: float) -> None:
    """:meth:`Scope.sleep` in the calling thread's scope; :func:`time.sleep` outside one."""
    s = current()
    if s is None:
        time.sleep(seconds)
    else:
        s.sleep(seconds)


__all__ = ["Cancelled", "Scope", "check", "current", "register", "scope", "sleep"]
