"""ShellStream: shell v2 packets from one connection, read by a thread."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from harness.device.device import Device
from harness.device.stream import ShellStream


def packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(4, "little") + body


@dataclass
class PairDevice(Device):
    """A device whose service is one end of a socket pair (the test holds the other)."""

    peer: socket.socket | None = None
    services: list[str] = field(default_factory=list)

    def open_service(self, service: str, timeout_s: float | None) -> socket.socket:
        self.services.append(service)
        ours, self.peer = socket.socketpair()
        return ours


def test_lines_stdin_and_exit() -> None:
    device = PairDevice("x")
    lines: list[tuple[str, str]] = []
    stream = ShellStream(device, "echo hi", lambda s, t: lines.append((s, t))).start()
    assert device.services == ["shell,v2,raw:echo hi"]
    assert device.peer is not None
    assert stream.send(b"q\n")
    assert device.peer.recv(64) == packet(0, b"q\n")
    device.peer.sendall(packet(1, b"S 1 a=1\nS 2") + packet(2, b"oops\n"))
    device.peer.sendall(packet(1, b" a=2\npartial") + packet(3, b"\x00"))
    stream.stop(5)
    assert lines == [("stdout", "S 1 a=1"), ("stderr", "oops"), ("stdout", "S 2 a=2"),
                     ("stdout", "partial")]
    assert stream.exit_code == 0 and stream.error is None
    assert not stream.is_alive()
    assert not stream.send(b"late")


def test_a_closed_connection_is_an_error_but_a_stop_is_not() -> None:
    device = PairDevice("x")
    stream = ShellStream(device, "loop", lambda s, t: None).start()
    assert device.peer is not None
    device.peer.close()
    stream.stop(5)
    assert stream.exit_code is None and stream.error is not None
    quiet = ShellStream(PairDevice("y"), "loop", lambda s, t: None).start()
    quiet.stop(0.05)
    assert quiet.error is None and not quiet.is_alive()
