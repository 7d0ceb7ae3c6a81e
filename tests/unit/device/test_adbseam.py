"""The seam to the adb server: what adb and sockets raise becomes a typed error, and no server
starts.

The mapping is fed the exceptions adbutils (an independent client) raises for the adb
server's own messages (as mobly's ``adb_test.py`` does for its ``AdbError``), and the seam's
own. The rest talks to a scripted adb *server* on loopback (the host side of the
smart-socket protocol: 4 hex digits of length, then the request; ``OKAY`` or ``FAIL`` + a
length-prefixed message), so harness's protocol code runs against real sockets.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import adbutils
import pytest
from adbutils.errors import AdbConnectionError, AdbTimeout

from harness.device import adbseam
from harness.device.adb import free_port
from harness.device.errors import (
    AdbError,
    AdbServerUnreachable,
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
)
from harness.errors import EXIT_DEVICE, EXIT_ERROR, LocalFileError
from tests.simfarm import adbutils_client

SERIAL = "R5CW1234"

# The adb server's own FAIL texts (packages/modules/adb: adb.cpp, transport.cpp).
UNAUTHORIZED = ("device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
                "Try 'adb kill-server' if that seems wrong.\nOtherwise check for a "
                "confirmation dialog on your device.")


@pytest.mark.parametrize(("raised", "kind", "message"), [
    (adbutils.AdbError("device offline"), DeviceOffline, f"{SERIAL}: offline"),
    (adbutils.AdbError(UNAUTHORIZED), DeviceUnauthorized, f"{SERIAL}: unauthorized"),
    (adbutils.AdbError(f"device '{SERIAL}' not found"), DeviceNotFound,
     f"{SERIAL}: not found on lab"),
    (adbutils.AdbError("no devices/emulators found"), DeviceNotFound,
     f"{SERIAL}: not found on lab"),
    (ConnectionRefusedError(111, "Connection refused"), AdbServerUnreachable,
     f"{SERIAL}: no adb server at lab"),
    (AdbConnectionError("connect to adb server failed: [Errno 111] Connection refused"),
     AdbServerUnreachable, f"{SERIAL}: no adb server at lab"),
    (AdbTimeout("connect to adb server timeout"), AdbServerUnreachable,
     f"{SERIAL}: no adb server at lab"),
    (EOFError("Expected 4 bytes, got 0"), DeviceDisconnected,
     f"{SERIAL}: connection lost: Expected 4 bytes, got 0"),
    (ConnectionResetError(104, "Connection reset by peer"), DeviceDisconnected,
     f"{SERIAL}: connection lost: [Errno 104] Connection reset by peer"),
    (adbutils.AdbError("open failed: No such file or directory", "/data/x"), AdbError,
     f"{SERIAL}: adb error: open failed: No such file or directory /data/x"),
])
def test_adb_failures_become_typed_errors_naming_the_serial(
        raised: BaseException, kind: type[DeviceError], message: str) -> None:
    error = adbseam.classify(raised, SERIAL, "lab")
    assert type(error) is kind
    assert str(error) == message
    assert error.serial == SERIAL
    assert error.exit_code == EXIT_DEVICE


def test_hints_say_what_to_do() -> None:
    assert "prompt" in (adbseam.classify(adbutils.AdbError(UNAUTHORIZED), SERIAL, "x").hint
                        or "")
    assert "harness devices" in (adbseam.classify(adbutils.AdbError("device 'a' not found"),
                                                  SERIAL, "x").hint or "")


def test_a_device_error_passes_through_unchanged() -> None:
    error = DeviceOffline("offline", serial=SERIAL)
    assert adbseam.classify(error, "other", "x") is error


def test_a_bug_is_not_an_adb_failure() -> None:
    # What device code catches: a TypeError or a KeyError must not be turned into exit 3.
    assert not isinstance(TypeError("bug"), adbseam.ADB_FAILURES)
    assert not isinstance(KeyError("bug"), adbseam.ADB_FAILURES)
    assert isinstance(TimeoutError("t"), adbseam.ADB_FAILURES)
    assert isinstance(adbseam.AdbProtocolError("x"), adbseam.ADB_FAILURES)


def test_clients_are_cached_per_server() -> None:
    # The tests' own adbutils client (harness has none: it speaks the protocol itself).
    assert adbutils_client("127.0.0.1", 5999, 5.0) is adbutils_client("127.0.0.1", 5999, 5.0)
    assert adbutils_client("127.0.0.1", 5998, 5.0) is not adbutils_client("127.0.0.1", 5999,
                                                                           5.0)


def test_bundled_adb_is_found() -> None:
    path = adbseam.bundled_adb_path()
    assert path is not None and Path(path).name == "adb"


# ---- against a scripted adb server ---------------------------------------------------------

Reply = Callable[[socket.socket, str], bool]  # (connection, request) -> keep reading?


@dataclass
class Endpoint:
    host: str
    port: int
    label: str


@dataclass
class FakeServer:
    """An adb server that answers each request with a scripted reply, recording requests."""

    replies: dict[str, Reply]
    requests: list[str] = field(default_factory=list)
    sock: socket.socket = field(default_factory=socket.socket)

    def start(self) -> Endpoint:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        threading.Thread(target=self._serve, daemon=True).start()
        port = self.sock.getsockname()[1]
        return Endpoint("127.0.0.1", port, f"127.0.0.1:{port}")

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        # A client that hangs up mid-reply (the tests of timeouts and cut replies) ends the
        # session, as it ends one in adb's server: no error of the server's.
        with conn, contextlib.suppress(ConnectionError):
            while True:
                size = _recv_exact(conn, 4)
                if not size:
                    return
                request = _recv_exact(conn, int(size, 16)).decode()
                self.requests.append(request)
                reply = next((r for prefix, r in self.replies.items()
                              if request.startswith(prefix)), fail("unknown service"))
                if not reply(conn, request):
                    return


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _block(text: str) -> bytes:
    return f"{len(text.encode()):04x}".encode() + text.encode()


def okay(conn: socket.socket, _request: str) -> bool:
    conn.sendall(b"OKAY")
    return True


def answer(status: bytes, text: str) -> Reply:
    """``status`` (OKAY or FAIL) and one length-prefixed text, then the server hangs up."""
    def reply(conn: socket.socket, _request: str) -> bool:
        conn.sendall(status + _block(text))
        return False
    return reply


def fail(message: str) -> Reply:
    return answer(b"FAIL", message)


def devices(listing: str) -> Reply:
    return answer(b"OKAY", listing)


def hang_up(conn: socket.socket, _request: str) -> bool:
    return False


def sync_recv(content: bytes) -> Reply:
    """``sync:`` then one RECV answered with ``content`` in 3-byte DATA chunks."""
    def reply(conn: socket.socket, _request: str) -> bool:
        conn.sendall(b"OKAY")
        cmd, length = struct.unpack("<4sI", _recv_exact(conn, 8))
        _recv_exact(conn, length)
        assert cmd == b"RECV"
        for start in range(0, len(content), 3):
            part = content[start:start + 3]
            conn.sendall(b"DATA" + struct.pack("<I", len(part)) + part)
        conn.sendall(b"DONE" + struct.pack("<I", 0))
        return False
    return reply


@pytest.fixture()
def serve() -> Iterator[Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]]]:
    servers: list[FakeServer] = []

    def start(replies: dict[str, Reply]) -> tuple[FakeServer, Endpoint]:
        server = FakeServer(replies)
        servers.append(server)
        return server, server.start()

    yield start
    for server in servers:
        server.sock.close()


@pytest.fixture()
def no_server_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stock adb clients would run `adb start-server` on 5037 here: make that fail the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a server was started: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)


@pytest.mark.usefixtures("no_server_start")
def test_no_server_is_started_when_none_listens() -> None:
    port = free_port()
    where = Endpoint("127.0.0.1", port, "lab")
    with pytest.raises(AdbServerUnreachable, match=f"{SERIAL}: no adb server at lab") as info:
        adbseam.open_service(where, SERIAL, "shell,v2,raw:true", 2.0, None)
    assert isinstance(info.value.__cause__, adbseam.AdbProtocolError)  # the cause is kept
    assert isinstance(info.value.__cause__.__cause__, ConnectionRefusedError)
    with pytest.raises(AdbServerUnreachable):
        adbseam.list_devices(where, 2.0)


@pytest.mark.parametrize(("message", "kind"), [
    ("device offline", DeviceOffline),
    (UNAUTHORIZED, DeviceUnauthorized),
    (f"device '{SERIAL}' not found", DeviceNotFound),
])
def test_transport_failures_from_the_server_are_typed(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]], message: str,
        kind: type[DeviceError]) -> None:
    server, where = serve({"host:transport:": fail(message)})
    with pytest.raises(kind) as info:
        adbseam.open_service(where, SERIAL, "shell,v2,raw:true", 2.0, None)
    assert info.value.serial == SERIAL
    assert str(info.value.__cause__) == message
    assert server.requests == [f"host:transport:{SERIAL}"]


def test_open_service_returns_the_socket_after_both_okays(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]]) -> None:
    server, where = serve({"host:transport:": okay, "shell,v2,raw:": okay})
    sock = adbseam.open_service(where, SERIAL, "shell,v2,raw:echo hi", 2.0, 7.0)
    with sock:
        assert sock.gettimeout() == 7.0
    assert server.requests == [f"host:transport:{SERIAL}", "shell,v2,raw:echo hi"]


def test_list_devices_reads_serials_and_states(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]]) -> None:
    _, where = serve({"host:devices": devices(f"{SERIAL}\tdevice\n127.0.0.1:5555\toffline\n")})
    assert adbseam.list_devices(where, 2.0) == [adbseam.DeviceInfo(SERIAL, "device"),
                                                adbseam.DeviceInfo("127.0.0.1:5555", "offline")]


def _pull_server(content: bytes) -> dict[str, Reply]:
    return {"host:transport:": okay, "sync:": sync_recv(content)}


def test_pull_file_copies_every_chunk(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]],
        tmp_path: Path) -> None:
    _, where = serve(_pull_server(b"0123456789"))
    dest = tmp_path / "out.qfp32"
    assert adbseam.pull_file(where, SERIAL, "/data/local/tmp/out", dest, 2.0) == 10
    assert dest.read_bytes() == b"0123456789"


def test_a_local_write_failure_is_a_local_error_not_the_phones(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]],
        tmp_path: Path) -> None:
    _, where = serve(_pull_server(b"0123456789"))
    missing_dir = tmp_path / "no-such-dir" / "out.qfp32"
    with pytest.raises(LocalFileError, match="cannot write .*out.qfp32") as info:
        adbseam.pull_file(where, SERIAL, "/data/local/tmp/out", missing_dir, 2.0)
    assert not isinstance(info.value, DeviceError)
    assert info.value.exit_code == EXIT_ERROR
    assert isinstance(info.value.__cause__, FileNotFoundError)
    # A disk that fills up half-way (/dev/full: every write fails with ENOSPC).
    with pytest.raises(LocalFileError, match="No space left") as info:
        adbseam.pull_file(where, SERIAL, "/data/local/tmp/out", Path("/dev/full"), 2.0)
    assert info.value.path == "/dev/full"


def test_a_remote_failure_in_pull_is_a_device_error(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]],
        tmp_path: Path) -> None:
    _, where = serve({"host:transport:": fail(f"device '{SERIAL}' not found")})
    with pytest.raises(DeviceNotFound) as info:
        adbseam.pull_file(where, SERIAL, "/data/local/tmp/out", tmp_path / "x", 2.0)
    assert info.value.serial == SERIAL


def sync_send(received: list[tuple[bytes, bytes]], status: bytes = b"OKAY",
              message: bytes = b"") -> Reply:
    """``sync:`` then one SEND: records every (id, payload) up to DONE, answers ``status``,
    then records what follows (QUIT)."""
    def reply(conn: socket.socket, _request: str) -> bool:
        conn.sendall(b"OKAY")
        while True:
            cmd, length = struct.unpack("<4sI", _recv_exact(conn, 8))
            payload = b"" if cmd in (b"DONE", b"QUIT") else _recv_exact(conn, length)
            received.append((cmd, payload))
            if cmd == b"DONE":
                conn.sendall(status + struct.pack("<I", len(message)) + message)
            if cmd in (b"QUIT", b"FAIL") or (cmd == b"DONE" and status != b"OKAY"):
                return False
    return reply


def test_push_bytes_speaks_the_sync_protocol_in_64k_chunks(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]]) -> None:
    got: list[tuple[bytes, bytes]] = []
    _, where = serve({"host:transport:": okay, "sync:": sync_send(got)})
    data = bytes(range(256)) * 300  # 76,800 bytes: two DATA packets
    adbseam.push_bytes(where, SERIAL, data, "/data/local/tmp/ids.i32", 0o644, 2.0)
    for _ in range(100):  # the QUIT may still be in flight
        if got and got[-1][0] == b"QUIT":
            break
        time.sleep(0.01)
    assert [cmd for cmd, _ in got] == [b"SEND", b"DATA", b"DATA", b"DONE", b"QUIT"]
    assert got[0][1] == b"/data/local/tmp/ids.i32,33188"  # S_IFREG | 0644, as adb sends
    assert len(got[1][1]) == 65536
    assert got[1][1] + got[2][1] == data


def test_a_refused_push_bytes_is_a_device_error_with_adbds_reason(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]]) -> None:
    got: list[tuple[bytes, bytes]] = []
    _, where = serve({"host:transport:": okay,
                      "sync:": sync_send(got, b"FAIL", b"couldn't create file: Read-only")})
    with pytest.raises(DeviceError, match="couldn't create file: Read-only") as info:
        adbseam.push_bytes(where, SERIAL, b"x", "/system/x", 0o644, 2.0)
    assert info.value.serial == SERIAL


def test_a_server_that_hangs_up_before_its_reply_is_a_disconnect(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]]) -> None:
    _, where = serve({"host:transport:": okay, "shell,v2,raw:": hang_up,
                      "host:devices": hang_up})
    with pytest.raises(DeviceDisconnected,
                       match=f"^{SERIAL}: connection lost: the adb server hung up before its "
                             "reply$"):
        adbseam.open_service(where, SERIAL, "shell,v2,raw:true", 2.0, None)
    with pytest.raises(DeviceDisconnected, match="hung up before its reply"):
        adbseam.list_devices(where, 2.0)


def test_a_reply_that_is_not_the_protocol_is_an_adb_error(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]]) -> None:
    def garbage(conn: socket.socket, _request: str) -> bool:
        conn.sendall(b"WHAT")
        return False

    _, where = serve({"host:transport:": garbage})
    with pytest.raises(AdbError, match="unexpected reply from the adb server: b'WHAT'"):
        adbseam.open_service(where, SERIAL, "sync:", 2.0, None)


def test_connect_returns_the_servers_answer(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]]) -> None:
    server, where = serve({"host:connect:": answer(b"OKAY", "connected to 10.0.0.2:5555")})
    assert adbseam.connect(where, "10.0.0.2:5555", 2.0) == "connected to 10.0.0.2:5555"
    assert server.requests == ["host:connect:10.0.0.2:5555"]


def test_a_missing_remote_file_in_pull_names_the_path(
        serve: Callable[[dict[str, Reply]], tuple[FakeServer, Endpoint]],
        tmp_path: Path) -> None:
    def sync_fail(conn: socket.socket, _request: str) -> bool:
        conn.sendall(b"OKAY")
        _, length = struct.unpack("<4sI", _recv_exact(conn, 8))
        _recv_exact(conn, length)
        message = b"open failed: No such file or directory"
        conn.sendall(b"FAIL" + struct.pack("<I", len(message)) + message)
        return False

    _, where = serve({"host:transport:": okay, "sync:": sync_fail})
    with pytest.raises(AdbError, match="No such file or directory /data/x") as info:
        adbseam.pull_file(where, SERIAL, "/data/x", tmp_path / "x", 2.0)
    assert info.value.serial == SERIAL


def test_the_bundled_adb_is_the_wheels_without_importing_adbutils(
        monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = adbseam.wheel_adb_path()
    assert wheel is not None and Path(wheel).parent.name == "binaries"
    assert Path(wheel).parent.parent.name == "adbutils"
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/opt/adb")  # adbutils' own override comes first
    assert adbseam.bundled_adb_path() == "/opt/adb"
