"""The sync client's framing, byte for byte, against a scripted peer on a socketpair.

The frames are those of AOSP adb's ``file_sync_protocol.h``: an (id, u32 little-endian) header;
STAT v1 replies (mode, size, mtime); DENT entries ending with a DONE entry of the same size;
SEND's "path,mode" spec, DATA chunks of at most 64 KiB and DONE carrying the mtime; OKAY/FAIL
statuses, FAIL followed by its message.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
from pathlib import Path

import pytest

from harness.assets.adbsync import (
    WRITE_BUFFER_BYTES,
    DirEntry,
    PushItem,
    SyncClient,
    _read_into,
)
from harness.assets.errors import SyncError
from harness.errors import LocalFileError
from tests.fakes import FakeDevice

HEADER = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4sIII")
DENT_V1 = struct.Struct("<4sIIII")


def frame(tag: bytes, value: int, body: bytes = b"") -> bytes:
    return HEADER.pack(tag, value) + body


def request(tag: bytes, path: str) -> bytes:
    return frame(tag, len(path.encode()), path.encode())


class Wire(FakeDevice):
    """A device whose sync service is the test's end of a socketpair."""

    def __init__(self) -> None:
        super().__init__()
        self.host, self.peer = socket.socketpair()
        self.peer.settimeout(10)

    def open_service(self, service: str, timeout_s: float | None) -> socket.socket:
        assert service == "sync:"
        self.host.settimeout(timeout_s)
        return self.host

    def received(self) -> bytes:
        """Everything the client sent, up to its end of the connection."""
        chunks = []
        while data := self.peer.recv(1 << 20):
            chunks.append(data)
        return b"".join(chunks)


@pytest.fixture
def wire() -> Wire:
    return Wire()


def test_stat_request_and_reply(wire: Wire) -> None:
    wire.peer.sendall(STAT_V1.pack(b"STAT", stat.S_IFREG | 0o644, 1234, 1_700_000_000))
    with SyncClient(wire) as client:
        assert client.stat("/data/local/tmp/a b") == (stat.S_IFREG | 0o644, 1234, 1_700_000_000)
    assert wire.received() == request(b"STAT", "/data/local/tmp/a b") + frame(b"QUIT", 0)


def test_batch_sends_every_request_before_reading_a_reply(wire: Wire) -> None:
    # Replies are queued up front: a client that waited for each reply would still pass, so
    # the request bytes are checked as one pipelined payload below.
    wire.peer.sendall(
        STAT_V1.pack(b"STAT", 0, 0, 0)
        + DENT_V1.pack(b"DENT", stat.S_IFDIR | 0o771, 4096, 1, 1) + b"."
        + DENT_V1.pack(b"DENT", stat.S_IFDIR | 0o771, 4096, 1, 2) + b".."
        + DENT_V1.pack(b"DENT", stat.S_IFREG | 0o600, 7, 99, 5) + b"w.bin"
        + DENT_V1.pack(b"DONE", 0, 0, 0, 0)
        + DENT_V1.pack(b"DONE", 0, 0, 0, 0)  # an empty or missing folder
        + frame(b"DATA", 3, b"abc") + frame(b"DATA", 2, b"de") + frame(b"DONE", 0))
    reqs = [(b"STAT", "/x"), (b"LIST", "/d"), (b"LIST", "/none"), (b"RECV", "/m.json")]
    with SyncClient(wire) as client:
        replies = client.batch(reqs)
    assert replies == [(0, 0, 0), [DirEntry("w.bin", stat.S_IFREG | 0o600, 7, 99)], [],
                       b"abcde"]
    assert wire.received() == b"".join(request(t, p) for t, p in reqs) + frame(b"QUIT", 0)


def test_batch_recv_fail_raises_with_the_phones_message(wire: Wire) -> None:
    wire.peer.sendall(frame(b"FAIL", 25, b"No such file or directory"))
    with SyncClient(wire) as client, pytest.raises(SyncError,
                                                   match="read /m: No such file or directory"):
        client.batch([(b"RECV", "/m")])


def test_a_connection_closed_mid_reply_is_a_sync_error(wire: Wire) -> None:
    wire.peer.sendall(STAT_V1.pack(b"STAT", 0, 0, 0)[:6])
    wire.peer.shutdown(socket.SHUT_WR)
    with SyncClient(wire) as client, pytest.raises(SyncError, match="closed during sync"):
        client.stat("/x")


def parse_sends(data: bytes) -> list[tuple[str, list[int], bytes, int]]:
    """(spec, DATA chunk sizes, content, DONE mtime) per SEND in a client's byte stream."""
    sends, at = [], 0
    while at < len(data):
        tag, n = HEADER.unpack_from(data, at)
        at += 8
        if tag == b"QUIT":
            break
        assert tag == b"SEND"
        spec = data[at : at + n].decode()
        at += n
        sizes: list[int] = []
        content = b""
        while True:
            tag, n = HEADER.unpack_from(data, at)
            at += 8
            if tag == b"DONE":
                sends.append((spec, sizes, content, n))
                break
            assert tag == b"DATA"
            sizes.append(n)
            content += data[at : at + n]
            at += n
    return sends


def test_push_many_frames_bytes_and_files(wire: Wire, tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(bytes(range(256)) * 300)  # 76,800 bytes: two DATA chunks via sendfile
    items = [PushItem("/data/local/tmp/m.json", 0o644, 1_700_000_001, data=b"{}"),
             PushItem("/data/local/tmp/w.bin", 0o755, 1_700_000_002, local=src),
             PushItem("/data/local/tmp/empty", 0o600, 5, data=b"")]
    wire.peer.sendall(frame(b"OKAY", 0) * 3)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(wire.received()))
    reader.start()
    progress: list[tuple[int, str]] = []
    with SyncClient(wire) as client:
        sent = client.push_many(items, lambda n, path: progress.append((n, path)))
    reader.join(10)
    assert sent == 2 + 76_800
    assert parse_sends(got[0]) == [
        (f"/data/local/tmp/m.json,{stat.S_IFREG | 0o644}", [2], b"{}", 1_700_000_001),
        (f"/data/local/tmp/w.bin,{stat.S_IFREG | 0o755}", [65536, 11264], src.read_bytes(),
         1_700_000_002),
        (f"/data/local/tmp/empty,{stat.S_IFREG | 0o600}", [], b"", 5)]
    assert progress == [(2, "/data/local/tmp/m.json"), (65536, "/data/local/tmp/w.bin"),
                        (11264, "/data/local/tmp/w.bin")]


def test_data_chunks_from_bytes_stay_within_64_kib(wire: Wire) -> None:
    wire.peer.sendall(frame(b"OKAY", 0))
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(wire.received()))
    reader.start()
    with SyncClient(wire) as client:
        client.push_many([PushItem("/d/x", 0o644, 0, data=b"z" * (2 * 65536 + 1))])
    reader.join(10)
    assert parse_sends(got[0])[0][1] == [65536, 65536, 1]


def test_push_fail_raises_the_phones_message(wire: Wire) -> None:
    message = b"couldn't create file: Read-only file system"
    wire.peer.sendall(frame(b"FAIL", len(message), message))
    reader = threading.Thread(target=wire.received, daemon=True)
    reader.start()
    with SyncClient(wire) as client, pytest.raises(
            SyncError, match="push /system/x: couldn't create file: Read-only"):
        client.push_many([PushItem("/system/x", 0o644, 0, data=b"x")])
    reader.join(10)


def test_pull_writes_through_a_temporary(wire: Wire, tmp_path: Path) -> None:
    wire.peer.sendall(frame(b"DATA", 4, b"abcd") + frame(b"DONE", 0)
                      + frame(b"FAIL", 6, b"nope!!"))
    dest = tmp_path / "out.qfp32"
    with SyncClient(wire) as client:
        assert client.pull("/data/local/tmp/out.qfp32", dest) == 4
        assert dest.read_bytes() == b"abcd"
        with pytest.raises(SyncError, match="pull /missing: nope!!"):
            client.pull("/missing", tmp_path / "missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.qfp32"]  # no .part left
    assert wire.received() == (request(b"RECV", "/data/local/tmp/out.qfp32")
                               + request(b"RECV", "/missing") + frame(b"QUIT", 0))


def test_frames_across_many_write_buffers(wire: Wire, tmp_path: Path) -> None:
    # A file of 2.5 write buffers between small files and bytes: every frame whole, every
    # DATA chunk at most 64 KiB, the bytes in order, progress adding up to what was sent.
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(251)) * (WRITE_BUFFER_BYTES * 5 // 2 // 251 + 1))
    small = []
    for i in range(40):
        path = tmp_path / f"s{i}.bin"
        path.write_bytes(bytes([i]) * (i * 977))
        small.append(path)
    items = [PushItem(f"/d/s{i}", 0o644, i, local=p) for i, p in enumerate(small[:20])]
    items += [PushItem("/d/big", 0o600, 7, local=big), PushItem("/d/m.json", 0o644, 8,
                                                                  data=b"x" * 70_000)]
    items += [PushItem(f"/d/s{i}", 0o644, i, local=p) for i, p in enumerate(small) if i >= 20]
    wire.peer.sendall(frame(b"OKAY", 0) * len(items))
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(wire.received()))
    reader.start()
    progress: list[int] = []
    confirmed: list[str] = []
    with SyncClient(wire) as client:
        sent = client.push_many(items, lambda n, _path: progress.append(n), confirmed)
    reader.join(10)
    sends = parse_sends(got[0])
    expected = [(item.local.read_bytes() if item.local else item.data) for item in items]
    assert [s[2] for s in sends] == expected
    assert [s[0].split(",")[0] for s in sends] == [item.remote for item in items]
    assert [s[3] for s in sends] == [item.mtime for item in items]
    assert all(0 < n <= 65536 for s in sends for n in s[1])
    assert sent == sum(progress) == sum(len(b or b"") for b in expected)
    assert confirmed == [item.remote for item in items]


def test_a_missing_local_file_stops_after_the_whole_files_before_it(wire: Wire,
                                                                    tmp_path: Path) -> None:
    first = tmp_path / "first.bin"
    first.write_bytes(b"1" * 1000)
    items = [PushItem("/d/first", 0o644, 1, local=first),
             PushItem("/d/gone", 0o644, 2, local=tmp_path / "gone.bin")]
    wire.peer.sendall(frame(b"OKAY", 0))
    got: list[bytes] = []

    def phone() -> None:  # reads to the writer's EOF, then hangs up as adbd does
        got.append(wire.received())
        wire.peer.close()

    reader = threading.Thread(target=phone)
    reader.start()
    confirmed: list[str] = []
    with SyncClient(wire) as client, pytest.raises(LocalFileError, match="cannot read .*gone"):
        client.push_many(items, None, confirmed)
    reader.join(10)
    assert parse_sends(got[0]) == [(f"/d/first,{stat.S_IFREG | 0o644}", [1000], b"1" * 1000, 1)]
    assert confirmed == ["/d/first"]


def test_read_into_fills_every_slot_over_short_reads_and_sees_the_end() -> None:
    buf = bytearray(10)
    view = memoryview(buf)
    r, w = os.pipe()
    try:
        os.write(w, b"abc")  # a pipe returns what it holds: several short reads
        writer = threading.Timer(0.05, lambda: os.write(w, b"defghij"))
        writer.start()
        assert _read_into(r, [view[0:4], view[4:5], view[5:10]])
        writer.join()
        assert bytes(buf) == b"abcdefghij"
        os.write(w, b"xy")
        os.close(w)
        w = -1
        assert not _read_into(r, [view[0:4]])  # ended (a file that shrank)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
