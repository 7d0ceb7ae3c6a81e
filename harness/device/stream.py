"""A long-lived command on the phone over one shell v2 stream, read by a thread.

For device-side services that print a line now and then for as long as something runs (the
telemetry sampler): one adb connection for the whole life of the command, never one round
trip per line. :meth:`ShellStream.start` opens it, lines go to a callback as they arrive,
:meth:`ShellStream.send` writes to the command's stdin (shell v2 packet 0), and
:meth:`ShellStream.stop` waits (bounded) for the command to end and then closes the stream —
adbd kills the command's process group when its stream closes
(``packages/modules/adb/daemon/shell_service.cpp``), so nothing is left behind on the phone.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

from harness.device.device import SHELL_V2_HEADER_BYTES, Device, OutputCallback, split_lines
from harness.device.errors import DeviceError
from harness.logs import get_logger

log = get_logger(__name__)

_STDIN, _STDOUT, _STDERR, _EXIT = 0, 1, 2, 3  # shell v2 packet ids (shell_protocol.h)
RECV_BYTES = 64 * 1024


@dataclass
class ShellStream:
    """One command on one shell v2 stream; start/stop/is_alive like a service."""

    device: Device
    command: str
    on_line: OutputCallback
    exit_code: int | None = None
    error: str | None = None  # why the stream ended abnormally (connection lost, ...)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: bool = False

    def start(self) -> ShellStream:
        self._sock = self.device.open_service(f"shell,v2,raw:{self.command}", None)
        self._thread = threading.Thread(target=self._read, name=f"stream-{self.device.serial}",
                                        daemon=True)
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def send(self, data: bytes) -> bool:
        """Write ``data`` to the command's stdin; False when the stream is gone."""
        with self._lock:
            if self._sock is None:
                return False
            packet = bytes([_STDIN]) + len(data).to_bytes(4, "little") + data
            try:
                self._sock.sendall(packet)
            except OSError:
                return False
            return True

    def stop(self, wait_s: float = 2.0) -> None:
        """Wait up to ``wait_s`` for the command to end, then close the stream (which ends
        it on the phone if it has not ended)."""
        if self._thread is not None:
            self._thread.join(wait_s)
        self._close()
        if self._thread is not None:
            self._thread.join(wait_s)

    def _close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            self._closing = True
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _read(self) -> None:
        buf = bytearray()
        pending = {_STDOUT: bytearray(), _STDERR: bytearray()}
        names = {_STDOUT: "stdout", _STDERR: "stderr"}
        sock = self._sock
        try:
            while sock is not None and self.exit_code is None:
                data = sock.recv(RECV_BYTES)
                if not data:
                    if not self._closing:
                        self.error = "connection closed before the command ended"
                    break
                buf += data
                while len(buf) >= SHELL_V2_HEADER_BYTES:
                    size = int.from_bytes(buf[1:5], "little")
                    if len(buf) < SHELL_V2_HEADER_BYTES + size:
                        break
                    kind = buf[0]
                    body = bytes(buf[SHELL_V2_HEADER_BYTES:SHELL_V2_HEADER_BYTES + size])
                    del buf[:SHELL_V2_HEADER_BYTES + size]
                    if kind in pending:
                        split_lines(pending[kind], body, names[kind], self.on_line)
                    elif kind == _EXIT:
                        self.exit_code = body[0] if body else 255
        except (OSError, DeviceError) as exc:
            if not self._closing:
                self.error = f"connection lost: {exc}"
        finally:
            for kind, rest in pending.items():
                if rest:  # a partial last line is still handed over
                    self.on_line(names[kind], rest.decode("utf-8", "replace"))
            log.debug("%s: stream ended (exit %s%s)", self.device.serial, self.exit_code,
                      f", {self.error}" if self.error else "")


__all__ = ["ShellStream"]
