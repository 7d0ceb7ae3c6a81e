"""harness.cancel: a worker blocked on a socket is woken, and raises once, in its own code."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

from harness import cancel


def _in_thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    caught: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # the test inspects it
            caught.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, caught


def test_outside_a_scope_everything_is_a_no_op() -> None:
    assert cancel.current() is None
    cancel.check()
    a, b = socket.socketpair()
    with a, b:
        cancel.register(a)
    cancel.sleep(0)


def test_a_read_blocked_in_a_scope_is_woken_by_cancel_and_the_worker_raises_itself() -> None:
    a, b = socket.socketpair()
    scope = cancel.Scope()
    entered = threading.Event()

    def worker() -> None:
        with cancel.scope(scope):
            cancel.register(a)
            entered.set()
            data = a.recv(10)  # blocks until the shutdown: end of file
            assert data == b""
            cancel.check()  # where harness turns the failure into an error

    with a, b:
        thread, caught = _in_thread(worker)
        assert entered.wait(5)
        time.sleep(0.05)
        scope.cancel("SIGTERM")
        thread.join(5)
        assert not thread.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], cancel.Cancelled)
    assert isinstance(caught[0], KeyboardInterrupt)
    assert caught[0].name == "SIGTERM"


def test_it_raises_once_so_the_clean_up_can_talk_to_the_phone() -> None:
    scope = cancel.Scope()
    scope.cancel("Ctrl-C")
    scope.cancel("SIGTERM")  # a second cancel changes nothing
    with cancel.scope(scope):
        with pytest.raises(cancel.Cancelled, match="Ctrl-C"):
            cancel.check()
        cancel.check()  # the clean-up's own commands go through
        a, b = socket.socketpair()
        with a, b:
            cancel.register(a)  # a clean-up connection is not shut down
            b.sendall(b"x")
            assert a.recv(1) == b"x"
        cancel.sleep(0.01)


def test_a_connection_opened_after_the_cancel_raises_and_is_closed() -> None:
    scope = cancel.Scope()
    scope.cancel("Ctrl-C")
    a, b = socket.socketpair()
    with b, cancel.scope(scope), pytest.raises(cancel.Cancelled):
        cancel.register(a)
    assert a.fileno() == -1


def test_a_sleep_in_a_scope_is_cut_short() -> None:
    scope = cancel.Scope()

    def worker() -> None:
        with cancel.scope(scope):
            cancel.sleep(60)

    thread, caught = _in_thread(worker)
    time.sleep(0.05)
    scope.cancel("Ctrl-C")
    thread.join(5)
    assert not thread.is_alive()
    assert [type(e) for e in caught] == [cancel.Cancelled]


def test_the_scope_is_the_threads_own_and_is_restored() -> None:
    outer, inner = cancel.Scope(), cancel.Scope()
    seen: list[cancel.Scope | None] = []
    with cancel.scope(outer):
        with cancel.scope(inner):
            assert cancel.current() is inner
            thread = threading.Thread(target=lambda: seen.append(cancel.current()))
            thread.start()
            thread.join()
        assert cancel.current() is outer
    assert cancel.current() is None
    assert seen == [None]  # another thread is outside any scope


def test_a_socket_closed_before_the_cancel_is_skipped() -> None:
    scope = cancel.Scope()
    a, b = socket.socketpair()
    with cancel.scope(scope):
        cancel.register(a)
    a.close()
    b.close()
    scope.cancel("Ctrl-C")  # no error: shutdown of a closed socket is ignored
    assert scope.cancelled
