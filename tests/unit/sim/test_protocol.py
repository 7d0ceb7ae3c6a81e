"""Wire-format unit tests: the byte layouts adbd and the adb host agree on."""

from __future__ import annotations

import struct

import pytest

from harness.sim import protocol as p


def test_message_roundtrip_and_magic() -> None:
    msg = p.Message(p.Command.OPEN, 7, 0, b"shell:ls\0")
    data = msg.encode()
    header = p.decode_header(data[:24])
    assert header.command == p.Command.OPEN
    assert (header.arg0, header.arg1, header.length) == (7, 0, 9)
    assert data[24:] == b"shell:ls\0"
    assert data[:4] == b"OPEN"
    assert struct.unpack("<I", data[20:24])[0] == p.Command.OPEN ^ 0xFFFFFFFF


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00" * 24,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[:24],
        p.Message(p.Command.CNXN, 0, 0).encode()[:20] + b"XXXX",
    ],
)
def test_garbage_header_is_rejected(garbage: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode_header(garbage)


def test_oversized_payload_is_rejected() -> None:
    header = p.HEADER.pack(p.Command.WRTE, 1, 1, 1 << 30, 0, p.Command.WRTE ^ 0xFFFFFFFF)
    with pytest.raises(p.ProtocolError, match="too large"):
        p.decode_header(header)


def test_short_header_is_rejected() -> None:
    with pytest.raises(p.ProtocolError, match="short"):
        p.decode_header(b"CNXN")


def test_checksum_is_byte_sum() -> None:
    assert p.payload_checksum(b"\x01\x02\xff") == 0x102


@pytest.mark.parametrize(
    ("raw", "name", "args", "command"),
    [
        (b"shell:ls -l\0", "shell", (), "ls -l"),
        (b"shell,v2,raw:echo a:b\0", "shell", ("v2", "raw"), "echo a:b"),
        (b"shell,v2,TERM=xterm-256color,pty:\0", "shell", ("v2", "TERM=xterm-256color", "pty"), ""),
        (b"sync:\0", "sync", (), ""),
        (b"exec:cat /x", "exec", (), "cat /x"),
        (b"reboot", "reboot", (), ""),
    ],
)
def test_parse_service(raw: bytes, name: str, args: tuple[str, ...], command: str) -> None:
    req = p.parse_service(raw)
    assert (req.name, req.args, req.command) == (name, args, command)


def test_banner_and_host_features() -> None:
    banner = p.connection_banner(
        {"ro.product.name": "pn", "ro.product.model": "M", "ro.product.device": "d", "x": "y"},
        ["shell_v2", "cmd"],
    )
    assert banner == (
        b"device::ro.product.name=pn;ro.product.model=M;ro.product.device=d;"
        b"features=shell_v2,cmd"
    )
    kind, features = p.parse_host_banner(b"host::features=shell_v2,cmd,stat_v2\0")
    assert kind == "host"
    assert features == {"shell_v2", "cmd", "stat_v2"}


def test_shell_packets_reassemble_across_chunks() -> None:
    stream = p.shell_packet(p.ShellId.STDIN, b"hello") + p.shell_packet(p.ShellId.CLOSE_STDIN, b"")
    reader = p.ShellPacketReader()
    got = []
    for i in range(len(stream)):
        got += reader.feed(stream[i : i + 1])
    assert got == [(0, b"hello"), (4, b"")]


def test_sync_list_done_is_padded_to_a_full_entry() -> None:
    assert len(p.LIST_DONE) == p.DENT_V1.size == 20
    assert p.LIST_DONE.startswith(b"DONE")
    assert p.dent(0o100644, 5, 0, b"a.txt")[:4] == b"DENT"
    assert p.sync_fail("nope") == b"FAIL" + struct.pack("<I", 4) + b"nope"
