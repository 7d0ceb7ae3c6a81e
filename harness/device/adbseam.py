"""The one seam between harness and the adb server: its host protocol spoken over a socket.

harness talks to the adb server the way adb's own client does (AOSP
``packages/modules/adb``: ``SERVICES.TXT``, ``SYNC.TXT``), with no client library: a request
is 4 hex digits of length and the text (``host:devices``, ``host:connect:ADDR``,
``host:transport:SERIAL`` and then a device service such as ``shell,v2,raw:...`` or
``sync:``); the answer is ``OKAY``, or ``FAIL`` and a length-prefixed message. The sync
service's packets (``RECV``/``SEND``/``DATA``/``DONE``/``FAIL``/``QUIT``) are an id and a
32-bit little-endian length or value. Every socket has ``TCP_NODELAY``: a request or a small
file is one segment, not held back by Nagle.

What harness takes from the ``adbutils`` wheel is only its adb binary, found the way
``adbutils.adb_path()`` finds it but without importing adbutils (which imports
``requests``/``urllib3``, ~0.1 s of every command's start-up). What harness gives back: plain
sockets, :class:`DeviceInfo` rows and its own typed errors (:func:`classify`).

No server is ever started here: when none listens, the error says so (stock adb clients
and adbutils run ``adb start-server`` on port 5037, which would start or disturb the user's
own server while we meant a private one). harness decides when and which server to start.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import stat
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness import cancel
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
from harness.logs import get_logger

log = get_logger(__name__)
SYNC_HEADER = struct.Struct("<4sI")  # a sync request or reply: id, then a length or value
SYNC_DATA_MAX_BYTES = 64 * 1024  # one sync DATA packet's limit (adb file_sync_protocol.h)
_HUNG_UP = "the adb server hung up before its reply"


class AdbProtocolError(Exception):
    """The adb server (or the phone's adbd) answered ``FAIL``, or something that is not the
    protocol; its arguments are the message (and, for a sync request, the path)."""


# What the adb server and the sockets to it raise; anything else is a bug in harness.
# (socket.timeout is TimeoutError, an OSError; a hang-up mid-reply is an EOFError.)
ADB_FAILURES: tuple[type[BaseException], ...] = (AdbProtocolError, OSError, EOFError)


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


def _runs(exe: str) -> bool:
    """adbutils' test of a candidate binary: ``adb version`` exits 0."""
    try:
        subprocess.run([exe, "version"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.STDOUT, check=True, timeout=30)
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    return True


def wheel_adb_path() -> str | None:
    """The adb binary shipped in the adbutils wheel (``adbutils/binaries/adb``), located
    with ``importlib.util.find_spec`` so that adbutils is not imported; None without it."""
    try:
        spec = importlib.util.find_spec("adbutils")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    name = "adb.exe" if os.name == "nt" else "adb"
    for location in spec.submodule_search_locations:
        exe = Path(location) / "binaries" / name
        if exe.is_file():
            return str(exe)
    return None


def bundled_adb_path() -> str | None:
    """adbutils' choice of adb binary, as ``adbutils.adb_path()`` makes it
    (``$ADBUTILS_ADB_PATH``, a working ``adb`` on ``$PATH``, then the binary in its wheel),
    or None when it finds none."""
    chosen = os.environ.get("ADBUTILS_ADB_PATH")
    if chosen:
        return chosen
    on_path = shutil.which("adb")
    if on_path and _runs(on_path):
        return on_path
    wheel = wheel_adb_path()
    if wheel is not None and _runs(wheel):
        return wheel
    return None


def _text(exc: BaseException) -> str:
    if isinstance(exc, OSError) or len(exc.args) < 2:
        return str(exc) or type(exc).__name__
    # Extra arguments in some errors: AdbProtocolError(message, path).
    return " ".join(str(a) for a in exc.args)


def classify(exc: BaseException, serial: str | None, server: str) -> DeviceError:
    """The typed harness error for what the adb server or a socket raised.

    ``server`` names the adb server (``host:port`` or the farm file's name) for messages.
    """
    if isinstance(exc, DeviceError):
        return exc
    text = _text(exc)
    lowered = text.lower()
    if "connect to adb server" in lowered or isinstance(exc, ConnectionRefusedError):
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
    cancel.check()  # the failure is our own shutdown of the socket (harness.cancel)
    error = classify(exc, serial, server.label)
    log.debug("adb: %s -> %s: %s", type(exc).__name__, type(error).__name__, error)
    return error


# ---- the host protocol ----------------------------------------------------------------------

def _connect(server: Server, timeout_s: float | None) -> socket.socket:
    """A connection to the adb server (never starting one), ``TCP_NODELAY`` and the TCP
    keep-alive adbutils sets (a dead peer is noticed on a long shell)."""
    cancel.check()
    try:
        sock = socket.create_connection((server.host, server.port), timeout=timeout_s)
    except OSError as exc:
        raise AdbProtocolError(f"connect to adb server failed: {exc}") from exc
    cancel.register(sock)  # a cancelled bench worker is woken out of it (harness.cancel)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
    return sock


def _recv_exact(sock: socket.socket, n: int, what: str = _HUNG_UP) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        got = sock.recv(n - len(buf))
        if not got:
            raise EOFError(what)
        buf += got
    return bytes(buf)


def _send_request(sock: socket.socket, request: str) -> None:
    data = request.encode()
    sock.sendall(b"%04x" % len(data) + data)


def _read_block(sock: socket.socket) -> str:
    """A length-prefixed text: 4 hex digits, then that many bytes."""
    size = _recv_exact(sock, 4)
    try:
        length = int(size, 16)
    except ValueError:
        raise AdbProtocolError(f"not a length from the adb server: {size!r}") from None
    return _recv_exact(sock, length).decode("utf-8", "replace")


def _check_okay(sock: socket.socket) -> None:
    status = _recv_exact(sock, 4)
    if status == b"OKAY":
        return
    if status == b"FAIL":
        raise AdbProtocolError(_read_block(sock))
    raise AdbProtocolError(f"unexpected reply from the adb server: {status!r}")


def _host_query(server: Server, request: str, timeout_s: float) -> str:
    """One host service that answers OKAY and a text (``host:devices``, ``host:connect:``)."""
    with _connect(server, timeout_s) as sock:
        _send_request(sock, request)
        _check_okay(sock)
        return _read_block(sock)


def list_devices(server: Server, timeout_s: float) -> list[DeviceInfo]:
    """``adb devices``: every phone the server knows, offline ones included."""
    try:
        listing = _host_query(server, "host:devices", timeout_s)
    except ADB_FAILURES as exc:
        raise _failure(exc, None, server) from exc
    infos = []
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            infos.append(DeviceInfo(parts[0], parts[1]))
    return infos


def connect(server: Server, address: str, timeout_s: float) -> str:
    """``adb connect ADDRESS`` (a network phone); returns what the server answered."""
    try:
        return _host_query(server, f"host:connect:{address}", timeout_s)
    except ADB_FAILURES as exc:
        raise _failure(exc, address, server) from exc


def open_service(server: Server, serial: str, service: str, connect_timeout_s: float,
                 timeout_s: float | None) -> socket.socket:
    """A socket on ``service`` of the phone (``shell,v2,raw:...``, ``sync:``) with
    ``timeout_s`` on its reads and writes (None: blocking).

    ``host:transport:SERIAL``, then the service, each answered OKAY or FAIL. The caller owns
    (and closes) the socket.
    """
    try:
        sock = _connect(server, connect_timeout_s)
    except ADB_FAILURES as exc:
        raise _failure(exc, serial, server) from exc
    try:
        _send_request(sock, f"host:transport:{serial}")
        _check_okay(sock)
        _send_request(sock, service)
        _check_okay(sock)
    except ADB_FAILURES as exc:
        sock.close()
        raise _failure(exc, serial, server) from exc
    sock.settimeout(timeout_s)
    return sock


# ---- the sync service -----------------------------------------------------------------------

def push_bytes(server: Server, serial: str, data: bytes, path: str, mode: int,
               timeout_s: float) -> None:
    """Write ``data`` to ``path`` on the phone through its sync service.

    SEND ``path,mode``, DATA chunks of at most 64 KiB, DONE with the mtime, in one write;
    then OKAY or FAIL; QUIT.
    """
    target = f"{path},{stat.S_IFREG | (mode & 0o7777)}".encode()  # as adb's own client sends
    parts = [SYNC_HEADER.pack(b"SEND", len(target)), target]
    for start in range(0, len(data), SYNC_DATA_MAX_BYTES):
        chunk = data[start : start + SYNC_DATA_MAX_BYTES]
        parts += [SYNC_HEADER.pack(b"DATA", len(chunk)), chunk]
    parts.append(SYNC_HEADER.pack(b"DONE", int(time.time()) & 0xFFFFFFFF))
    sock = open_service(server, serial, "sync:", timeout_s, timeout_s)
    try:
        sock.sendall(b"".join(parts))
        tag, length = SYNC_HEADER.unpack(_recv_exact(sock, 8))
        if tag == b"FAIL":
            raise AdbProtocolError(_recv_exact(sock, length).decode("utf-8", "replace"))
        if tag != b"OKAY":
            raise AdbProtocolError(f"push {path}: unexpected sync reply {tag!r}")
        sock.sendall(SYNC_HEADER.pack(b"QUIT", 0))
    except ADB_FAILURES as exc:
        raise _failure(exc, serial, server) from exc
    finally:
        sock.close()


def _chunks(server: Server, serial: str, path: str, timeout_s: float) -> Iterator[bytes]:
    """The phone's file ``path`` (sync RECV): its DATA chunks until DONE; FAIL raises."""
    sock = open_service(server, serial, "sync:", timeout_s, timeout_s)
    with sock:
        try:
            name = path.encode()
            sock.sendall(SYNC_HEADER.pack(b"RECV", len(name)) + name)
            while True:
                tag, length = SYNC_HEADER.unpack(
                    _recv_exact(sock, 8, "connection closed during sync"))
                if tag == b"DONE":
                    break
                if tag == b"FAIL":
                    raise AdbProtocolError(_recv_exact(sock, length).decode("utf-8", "replace"),
                                           path)
                if tag != b"DATA":
                    raise AdbProtocolError(f"pull {path}: unexpected sync reply {tag!r}")
                chunk = _recv_exact(sock, length, "connection closed during sync")
                yield chunk
            sock.sendall(SYNC_HEADER.pack(b"QUIT", 0))
        except ADB_FAILURES as exc:
            raise _failure(exc, serial, server) from exc


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
    "AdbProtocolError",
    "DeviceInfo",
    "Server",
    "bundled_adb_path",
    "classify",
    "connect",
    "list_devices",
    "open_service",
    "pull_file",
    "push_bytes",
]
