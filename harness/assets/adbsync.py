"""A pipelined ADB sync client: many files over one connection, no round trip per file.

adbutils' ``sync.push`` stats the destination, sends 4 KiB chunks and waits for each file's
reply before the next; over thousands of files that is thousands of round trips. Here a
writer thread streams every SEND (64 KiB DATA chunks) while the caller reads the replies, as
the ``adb push`` binary does. The writer lays the frames out in one reusable 1 MiB buffer,
reading each file straight in behind its DATA headers (one ``readv`` per buffer), and sends
each full buffer with one ``sendall``: a few syscalls per MiB, where one ``sendfile`` and one
header write per 64 KiB chunk cost more in Python than the copy they avoid.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import cancel
from harness.assets.errors import SyncConnectionLost, SyncError
from harness.device.device import Device
from harness.errors import LocalFileError

SYNC_DATA_MAX_BYTES = 64 * 1024  # the protocol's limit for one DATA chunk
SYNC_HEADER = struct.Struct("<4sI")
SEND_BUFFER_BYTES = 4 * 1024 * 1024
WRITE_BUFFER_BYTES = 1024 * 1024  # frames laid out per sendall
READ_BUFFER_BYTES = 256 * 1024

Progress = Callable[[int, str], None]  # (bytes just sent, device path)


@dataclass(frozen=True)
class PushItem:
    """One file to send: local source (or bytes), device path, mode bits, mtime (s)."""

    remote: str
    mode: int
    mtime: int
    local: Path | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.local is not None
        return self.local.stat().st_size


@dataclass(frozen=True)
class DirEntry:
    name: str
    mode: int
    size: int  # sync v1 carries 32 bits: sizes of 4 GiB and more wrap
    mtime: int


class SyncClient:
    """One ``sync:`` session on a phone. Use as a context manager."""

    def __init__(self, device: Device, timeout_s: float | None = 600.0) -> None:
        self.device = device
        self.sock: socket.socket = device.open_service("sync:", timeout_s)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        with contextlib.suppress(OSError):  # not a TCP socket (a test's socketpair)
            # The requests and a push's last buffer go out at once, not after an ACK.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rfile = self.sock.makefile("rb", buffering=READ_BUFFER_BYTES)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(SYNC_HEADER.pack(b"QUIT", 0))
        with contextlib.suppress(OSError):
            self._rfile.close()
        self.sock.close()

    # ---- reading ----
    def _read(self, n: int) -> bytes:
        try:
            data = self._rfile.read(n)
        except OSError as exc:
            cancel.check()  # our own shutdown of the socket (harness.cancel)
            raise SyncConnectionLost(f"connection lost during sync: {exc}",
                                     serial=self.device.serial) from exc
        if len(data) != n:
            cancel.check()
            raise SyncConnectionLost("connection closed during sync",
                                     serial=self.device.serial)
        return bytes(data)

    def _reply(self) -> tuple[bytes, int]:
        tag, value = SYNC_HEADER.unpack(self._read(8))
        return tag, value

    def _fail(self, length: int, what: str) -> SyncError:
        message = self._read(length).decode("utf-8", "replace")
        return SyncError(f"{what}: {message}", serial=self.device.serial)

    # ---- requests ----
    def _send(self, data: bytes | bytearray) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:  # a broken connection is the phone's, not a harness bug
            cancel.check()  # our own shutdown of the socket (harness.cancel)
            raise SyncConnectionLost(f"connection lost during sync: {exc}",
                                     serial=self.device.serial) from exc

    def _request(self, tag: bytes, path: str) -> None:
        data = path.encode()
        self._send(SYNC_HEADER.pack(tag, len(data)) + data)

    def stat(self, path: str) -> tuple[int, int, int]:
        """(mode, size, mtime); mode 0 when the path does not exist."""
        self._request(b"STAT", path)
        tag, mode = self._reply()
        if tag != b"STAT":
            raise SyncError(f"bad STAT reply {tag!r}", serial=self.device.serial)
        size, mtime = struct.unpack("<II", self._read(8))
        return mode, size, mtime

    def batch(self, requests: Sequence[tuple[bytes, str]]) -> list[Any]:
        """Send every request at once, then read the replies in order (one round trip).

        STAT -> (mode, size, mtime); LIST -> [DirEntry] (empty for a missing directory);
        RECV -> bytes (a FAIL raises: RECV only what STAT showed to exist).
        """
        payload = bytearray()
        for tag, path in requests:
            data = path.encode()
            payload += SYNC_HEADER.pack(tag, len(data)) + data
        self._send(payload)
        replies: list[Any] = []
        for tag, path in requests:
            if tag == b"STAT":
                _tag, mode = self._reply()
                size, mtime = struct.unpack("<II", self._read(8))
                replies.append((mode, size, mtime))
            elif tag == b"LIST":
                entries = []
                while True:
                    kind, mode, size, mtime, namelen = struct.unpack("<4sIIII", self._read(20))
                    if kind == b"DONE":
                        break
                    name = self._read(namelen).decode("utf-8", "surrogateescape")
                    if name not in (".", ".."):
                        entries.append(DirEntry(name, mode, size, mtime))
                replies.append(entries)
            elif tag == b"RECV":
                content = bytearray()
                while True:
                    kind, length = self._reply()
                    if kind == b"DATA":
                        content += self._read(length)
                    elif kind == b"DONE":
                        break
                    elif kind == b"FAIL":
                        raise self._fail(length, f"read {path}")
                replies.append(bytes(content))
        return replies

    def pull(self, remote: str, local: Path) -> int:
        """Copy a device file to ``local`` (written under a temporary name, then renamed)."""
        tmp = local.with_name(f".{local.name}.part")
        total = 0
        self._request(b"RECV", remote)
        with tmp.open("wb") as fh:
            while True:
                tag, length = self._reply()
                if tag == b"DATA":
                    fh.write(self._read(length))
                    total += length
                elif tag == b"DONE":
                    break
                elif tag == b"FAIL":
                    tmp.unlink(missing_ok=True)
                    raise self._fail(length, f"pull {remote}")
                else:
                    raise SyncError(f"bad RECV reply {tag!r}", serial=self.device.serial)
        tmp.replace(local)
        return total

    def push_many(self, items: Sequence[PushItem], progress: Progress | None = None,
                  confirmed: list[str] | None = None) -> int:
        """Send every item over this one connection; return bytes sent.

        Replies are read while the writer streams, so the phone never waits on us. The first
        FAIL stops the transfer (the phone ends the session after a FAIL) and is raised.
        ``confirmed`` receives the remote path of each item the phone acknowledged (OKAY),
        so that a caller whose connection broke knows which files are complete there.
        """
        if not items:
            return 0
        errors: list[BaseException] = []
        sent = [0]

        def writer() -> None:
            try:
                self._write_all(items, sent, progress)
            except BaseException as exc:
                errors.append(exc)
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_WR)

        thread = threading.Thread(target=writer, name="adb-sync-writer", daemon=True)
        thread.start()
        failure: BaseException | None = None
        try:
            for item in items:
                tag, length = self._reply()
                if tag == b"FAIL":
                    raise self._fail(length, f"push {item.remote}")
                if tag != b"OKAY":
                    raise SyncError(f"bad SEND reply {tag!r}", serial=self.device.serial)
                if confirmed is not None:
                    confirmed.append(item.remote)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            failure = exc
        finally:
            thread.join()
        if errors and not isinstance(errors[0], OSError):
            raise errors[0]  # the writer's LocalFileError (the phone only saw EOF), or a bug
        if failure is not None:
            raise failure
        if errors:
            raise SyncError(f"push failed: {errors[0]}", serial=self.device.serial) from errors[0]
        return sent[0]

    def _write_all(self, items: Sequence[PushItem], sent: list[int],
                   progress: Progress | None) -> None:
        out = _FrameBuffer(self.sock, sent, progress)
        for item in items:
            spec = f"{item.remote},{stat.S_IFREG | (item.mode & 0o7777)}".encode()
            if item.data is not None:
                out.header(b"SEND", spec)
                out.data(item.data, item.remote)
            else:
                assert item.local is not None
                try:
                    fd = os.open(item.local, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError as exc:
                    out.flush()  # the files before it are whole: let the phone confirm them
                    raise LocalFileError(f"cannot read {item.local}: {exc.strerror or exc}",
                                         path=str(item.local)) from exc
                try:
                    out.header(b"SEND", spec)
                    if not out.file(fd, os.fstat(fd).st_size, item.remote):
                        raise SyncError(f"{item.local} shrank while being pushed",
                                        serial=self.device.serial)
                finally:
                    os.close(fd)
            out.header(b"DONE", b"", item.mtime & 0xFFFFFFFF)
        out.flush()


class _FrameBuffer:
    """The writer's frames laid out in one reusable buffer, each full buffer sent by one
    ``sendall``: SEND headers, DATA headers with their payload read straight in behind them
    (one ``readv`` fills every chunk of a buffer), DONE. Progress is reported per DATA chunk
    once the buffer holding it has gone out."""

    def __init__(self, sock: socket.socket, sent: list[int], progress: Progress | None,
                 size: int = WRITE_BUFFER_BYTES) -> None:
        self.sock, self.sent, self.progress = sock, sent, progress
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.fill = 0
        self.unsent: list[tuple[int, str]] = []  # DATA chunks in the buffer

    def flush(self) -> None:
        if self.fill:
            self.sock.sendall(self.view[:self.fill])
            self.fill = 0
        for n, remote in self.unsent:
            self.sent[0] += n
            if self.progress is not None:
                self.progress(n, remote)
        self.unsent.clear()

    def header(self, tag: bytes, body: bytes | memoryview, value: int | None = None) -> None:
        """A SEND (``value``: the spec's length) or DONE (``value``: the mtime) frame."""
        end = self.fill + SYNC_HEADER.size + len(body)
        if end > len(self.buf):
            self.flush()
            end = SYNC_HEADER.size + len(body)
        SYNC_HEADER.pack_into(self.buf, self.fill, tag, len(body) if value is None else value)
        self.buf[self.fill + SYNC_HEADER.size:end] = body
        self.fill = end

    def data(self, payload: bytes, remote: str) -> None:
        """DATA frames of at most 64 KiB holding ``payload``."""
        view = memoryview(payload)
        for start in range(0, len(view), SYNC_DATA_MAX_BYTES):
            chunk = view[start:start + SYNC_DATA_MAX_BYTES]
            self.header(b"DATA", chunk)
            self.unsent.append((len(chunk), remote))

    def file(self, fd: int, size: int, remote: str) -> bool:
        """DATA frames holding the first ``size`` bytes of ``fd``; False if it ended first."""
        buf, view, cap, step = self.buf, self.view, len(self.buf), SYNC_HEADER.size
        offset = 0
        while offset < size:
            if self.fill + step + min(SYNC_DATA_MAX_BYTES, size - offset) > cap:
                self.flush()
            pos, slots = self.fill, []
            while offset < size:
                n = min(SYNC_DATA_MAX_BYTES, size - offset)
                if pos + step + n > cap:
                    break
                SYNC_HEADER.pack_into(buf, pos, b"DATA", n)
                slots.append(view[pos + step:pos + step + n])
                pos += step + n
                offset += n
            sizes = [len(slot) for slot in slots]
            if not _read_into(fd, slots):
                return False
            self.fill = pos
            self.unsent += [(n, remote) for n in sizes]
        return True


def _read_into(fd: int, slots: list[memoryview]) -> bool:
    """Fill every slot from ``fd`` (``readv``, again after a short read); False at EOF."""
    while slots:
        got = os.readv(fd, slots)
        if got == 0:
            return False
        while slots and got >= len(slots[0]):
            got -= len(slots.pop(0))
        if got:
            slots[0] = slots[0][got:]
    return True
