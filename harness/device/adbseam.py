"""The one seam between harness and adbutils: every use of adbutils is in this module.

What harness takes from adbutils: the adb binary its wheel ships, a client for the adb
server's host services (``host:devices``, ``host:connect``), a device's sync service for
pushing bytes and pulling files, and one connection with a device service opened on it. What
harness gives back: plain sockets, :class:`DeviceInfo` rows and its own typed errors
(:func:`classify`), so no adbutils type or exception travels further up.

Stock adbutils runs ``adb start-server`` (on the default port 5037) when it cannot reach the
server it was given: that would start or disturb the user's own server while we meant a
private one. :class:`_NoAutostartConnection` raises instead; harness decides when and which
server to start. That one override is the only adbutils internal used (``_safe_connect``,
which ``AdbConnection.__init__`` calls); the version bound in ``setup.cfg`` is what
``tests/unit/device/test_adbseam.py`` pins it against.

``adbutils.install`` (APK install over HTTP) imports ``requests`` and ``urllib3``: about 80 ms
of every command's start-up, for a feature harness never uses. Unless something imported it
already, an empty stand-in for its one name (the ``InstallExtension`` mixin of
``AdbDevice``) is registered before adbutils is imported, so ``AdbDevice.install`` is absent.
"""

from __future__ import annotations

import functools
import logging
import socket
import stat
import struct
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.device.errors import (
    AdbError,
    AdbServerUnreachable,
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
)
from harness.errors import LocalFileError


def _without_apk_install() -> None:
    if "adbutils.install" in sys.modules:
        return
    stand_in = types.ModuleType("adbutils.install", "harness: APK install left out (adbseam)")

    class InstallExtension:
        pass

    stand_in.InstallExtension = InstallExtension  # type: ignore[attr-defined]
    sys.modules["adbutils.install"] = stand_in


_without_apk_install()

import adbutils  # noqa: E402 - after the stand-in above
from adbutils.errors import AdbConnectionError  # noqa: E402

log = logging.getLogger(__name__)
SYNC_HEADER = struct.Struct("<4sI")  # a sync request or reply: id, then a length or value

# What adb, the sockets to its server and adbutils raise; anything else is a bug in harness.
# (socket.timeout is TimeoutError, an OSError; adbutils' read_exact raises EOFError.)
ADB_FAILURES: tuple[type[BaseException], ...] = (adbutils.AdbError, OSError, EOFError)


@dataclass(frozen=True)
class DeviceInfo:
    """One line of ``adb devices``: a serial and its state (``device``, ``offline``, ...)."""

    serial: str
    state: str


class Server(Protocol):
    """Where an adb server listens, and its name for messages (``AdbEndpoint`` is one)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def label(self) -> str: ...


def bundled_adb_path() -> str | None:
    """adbutils' choice of adb binary (``$ADBUTILS_ADB_PATH``, ``$PATH``, then the binary in
    its wheel), or None when it finds none."""
    try:
        return str(adbutils.adb_path())
    except adbutils.AdbError:
        return None


class _NoAutostartConnection(adbutils.AdbConnection):  # type: ignore[misc]  # untyped base
    def _safe_connect(self) -> socket.socket:
        # adbutils' own version runs `adb start-server` and retries when this fails.
        sock: socket.socket = self._create_socket()
        return sock


class _Client(adbutils.AdbClient):  # type: ignore[misc]  # untyped base
    """An adbutils client whose connections never start a server."""

    def __init__(self, host: str, port: int, socket_timeout: float | None) -> None:
        super().__init__(host=host, port=port, socket_timeout=socket_timeout)
        self._timeout_s = socket_timeout

    def make_connection(self, timeout: float | None = None) -> adbutils.AdbConnection:
        conn = _NoAutostartConnection(self.host, self.port)
        chosen = timeout or self._timeout_s
        if chosen:
            conn.conn.settimeout(chosen)
        return conn


@functools.cache
def client(host: str, port: int, socket_timeout: float | None) -> adbutils.AdbClient:
    """The adbutils client for one server (cached: a client holds no connection)."""
    return _Client(host, port, socket_timeout)


def _text(exc: BaseException) -> str:
    if isinstance(exc, OSError) or len(exc.args) < 2:
        return str(exc) or type(exc).__name__
    # adbutils puts extra arguments in some errors: AdbError(message, path).
    return " ".join(str(a) for a in exc.args)


def classify(exc: BaseException, serial: str | None, server: str) -> DeviceError:
    """The typed harness error for what adb, adbutils or a socket raised.

    ``server`` names the adb server (``host:port`` or the farm file's name) for messages.
    """
    if isinstance(exc, DeviceError):
        return exc
    text = _text(exc)
    lowered = text.lower()
    if ("connect to adb server" in lowered
            or isinstance(exc, ConnectionRefusedError | AdbConnectionError)):
        return AdbServerUnreachable(f"no adb server at {server}", serial=serial,
                                    hint="is the adb server running?")
    if "unauthorized" in lowered:
        return DeviceUnauthorized("unauthorized", serial=serial,
                                  hint="accept the USB debugging prompt on the phone")
    if "offline" in lowered:
        return DeviceOffline("offline", serial=serial,
                             hint="reconnect the cable or `adb reconnect`")
    if "not found" in lowered or "no devices" in lowered:
        return DeviceNotFound(f"not found on {server}", serial=serial,
                              hint="`harness devices` lists the phones")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError):
        return DeviceDisconnected(f"connection lost: {text}", serial=serial)
    return AdbError(f"adb error: {text}", serial=serial)


def _failure(exc: BaseException, serial: str | None, server: Server) -> DeviceError:
    error = classify(exc, serial, server.label)
    log.debug("adb: %s -> %s: %s", type(exc).__name__, type(error).__name__, error)
    return error


def list_devices(server: Server, timeout_s: float) -> list[DeviceInfo]:
    """``adb devices``: every phone the server knows, offline ones included."""
    try:
        infos = client(server.host, server.port, timeout_s).list()
    except ADB_FAILURES as exc:
        raise _failure(exc, None, server) from exc
    return [DeviceInfo(str(i.serial), str(i.state)) for i in infos]


def connect(server: Server, address: str, timeout_s: float) -> str:
    """``adb connect ADDRESS`` (a network phone); returns what the server answered."""
    try:
        return str(client(server.host, server.port, timeout_s).connect(address, timeout=timeout_s))
    except ADB_FAILURES as exc:
        raise _failure(exc, address, server) from exc


def open_service(server: Server, serial: str, service: str, connect_timeout_s: float,
                 timeout_s: float | None) -> socket.socket:
    """A socket on ``service`` of the phone (``shell,v2,raw:...``, ``sync:``) with
    ``timeout_s`` on its reads and writes (None: blocking).

    ``host:transport:SERIAL`` directly: adbutils' own ``open_transport`` first asks the
    server its version over a second connection, and its ``close()`` sleeps 10 ms. The
    caller owns (and closes) the socket.
    """
    try:
        conn = client(server.host, server.port, connect_timeout_s).make_connection()
    except ADB_FAILURES as exc:
        raise _failure(exc, serial, server) from exc
    sock: socket.socket = conn.conn
    try:
        conn.send_command(f"host:transport:{serial}")
        conn.check_okay()
        conn.send_command(service)
        conn.check_okay()
    except ADB_FAILURES as exc:
        sock.close()
        raise _failure(exc, serial, server) from exc
    sock.settimeout(timeout_s)
    return sock


SYNC_DATA_MAX_BYTES = 64 * 1024  # one sync DATA packet's limit (adb file_sync_protocol.h)


def push_bytes(server: Server, serial: str, data: bytes, path: str, mode: int,
               timeout_s: float) -> None:
    """Write ``data`` to ``path`` on the phone through its sync service.

    The sync protocol spoken here directly (AOSP ``file_sync_protocol.h``: SEND
    ``path,mode``, DATA chunks of at most 64 KiB, DONE with the mtime, then OKAY or FAIL;
    QUIT), in one write with ``TCP_NODELAY``: adbutils' ``sync.push`` leaves Nagle on and
    its connection's ``close()`` sleeps 10 ms, ~80 ms for a 616-byte token file.
    """
    target = f"{path},{stat.S_IFREG | (mode & 0o7777)}".encode()  # as adb's own client sends
    parts = [SYNC_HEADER.pack(b"SEND", len(target)), target]
    for start in range(0, len(data), SYNC_DATA_MAX_BYTES):
        chunk = data[start : start + SYNC_DATA_MAX_BYTES]
        parts += [SYNC_HEADER.pack(b"DATA", len(chunk)), chunk]
    parts.append(SYNC_HEADER.pack(b"DONE", int(time.time()) & 0xFFFFFFFF))
    sock = open_service(server, serial, "sync:", timeout_s, timeout_s)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"".join(parts))
        tag, length = SYNC_HEADER.unpack(_recv_exact(sock, 8))
        if tag == b"FAIL":
            raise adbutils.AdbError(_recv_exact(sock, length).decode("utf-8", "replace"))
        if tag != b"OKAY":
            raise adbutils.AdbError(f"push {path}: unexpected sync reply {tag!r}")
        sock.sendall(SYNC_HEADER.pack(b"QUIT", 0))
    except ADB_FAILURES as exc:
        raise _failure(exc, serial, server) from exc
    finally:
        sock.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        got = sock.recv(n - len(buf))
        if not got:
            raise EOFError("connection closed during sync")
        buf += got
    return bytes(buf)


def _chunks(server: Server, serial: str, path: str,
            timeout_s: float) -> Iterator[bytes]:
    chunks = client(server.host, server.port, timeout_s).device(serial).sync.iter_content(path)
    while True:
        try:
            chunk = next(chunks, None)
        except ADB_FAILURES as exc:
            raise _failure(exc, serial, server) from exc
        if chunk is None:
            return
        yield chunk


def pull_file(server: Server, serial: str, path: str, dest: Path,
              timeout_s: float) -> int:
    """Copy the phone's file ``path`` to ``dest``; return its size.

    A failure of the phone or adb is a :class:`DeviceError`; a failure to write ``dest`` on
    this host is a :class:`~harness.errors.LocalFileError` (not the phone's fault).
    """
    try:
        handle = dest.open("wb", buffering=0)  # a failed write fails here, not at close
    except OSError as exc:
        raise LocalFileError(f"cannot write {dest}: {exc.strerror or exc}",
                             path=str(dest)) from exc
    size = 0
    with handle:
        for chunk in _chunks(server, serial, path, timeout_s):
            try:
                handle.write(chunk)
            except OSError as exc:
                raise LocalFileError(f"cannot write {dest}: {exc.strerror or exc}",
                                     path=str(dest)) from exc
            size += len(chunk)
    return size


__all__ = [
    "ADB_FAILURES",
    "DeviceInfo",
    "Server",
    "bundled_adb_path",
    "classify",
    "client",
    "connect",
    "list_devices",
    "open_service",
    "pull_file",
    "push_bytes",
]
