"""The ADB wire formats a device speaks: transport messages, shell protocol v2, sync.

Pure encoding and decoding, no I/O, so that it is unit tested on bytes. Layouts follow AOSP's
``packages/modules/adb`` (``protocol.txt``, ``SYNC.TXT``, ``shell_protocol.h``).

Transport message header: six little-endian u32 — command, arg0, arg1, data length, data
checksum, magic (= command ^ 0xffffffff) — followed by the payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

HEADER = struct.Struct("<6I")
HEADER_SIZE_BYTES = HEADER.size  # 24

A_VERSION_MIN = 0x01000000
# From this version on the host sends a zero checksum and does not check ours.
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001
# The most we accept from the host in one message; we answer with min(ours, host's).
MAX_PAYLOAD_BYTES = 1024 * 1024
# Refuse absurd lengths from a confused or hostile peer before allocating anything.
MAX_ACCEPTED_PAYLOAD_BYTES = 16 * 1024 * 1024


def _cmd(tag: bytes) -> int:
    return int(struct.unpack("<I", tag)[0])


class Command(IntEnum):
    """Transport message commands (their value is the little-endian ASCII tag)."""

    CNXN = _cmd(b"CNXN")
    OPEN = _cmd(b"OPEN")
    OKAY = _cmd(b"OKAY")
    WRTE = _cmd(b"WRTE")
    CLSE = _cmd(b"CLSE")
    AUTH = _cmd(b"AUTH")
    STLS = _cmd(b"STLS")
    SYNC = _cmd(b"SYNC")


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid ADB message; the connection must close."""


@dataclass(frozen=True)
class Message:
    """One transport message."""

    command: int
    arg0: int
    arg1: int
    payload: bytes = b""

    def encode(self) -> bytes:
        """Serialise with a zero checksum (valid for every host from version 0x01000001)."""
        return (
            HEADER.pack(
                self.command,
                self.arg0,
                self.arg1,
                len(self.payload),
                0,
                self.command ^ 0xFFFFFFFF,
            )
            + self.payload
        )

    @property
    def name(self) -> str:
        try:
            return Command(self.command).name
        except ValueError:
            return f"0x{self.command:08x}"


@dataclass(frozen=True)
class Header:
    command: int
    arg0: int
    arg1: int
    length: int
    checksum: int


def decode_header(data: bytes) -> Header:
    """Parse and validate a 24-byte header; raise ProtocolError on garbage."""
    if len(data) != HEADER_SIZE_BYTES:
        raise ProtocolError(f"short header ({len(data)} bytes)")
    command, arg0, arg1, length, checksum, magic = HEADER.unpack(data)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic 0x{magic:08x} for command 0x{command:08x}")
    if command not in Command._value2member_map_:
        raise ProtocolError(f"unknown command 0x{command:08x}")
    if length > MAX_ACCEPTED_PAYLOAD_BYTES:
        raise ProtocolError(f"payload length {length} too large")
    return Header(command, arg0, arg1, length, checksum)


def payload_checksum(payload: bytes) -> int:
    """The legacy checksum: the byte sum of the payload, as a u32."""
    return sum(payload) & 0xFFFFFFFF


def connection_banner(props: dict[str, str], features: list[str]) -> bytes:
    """The device's CNXN payload: ``device::ro.product.name=..;..;features=a,b``."""
    keys = ("ro.product.name", "ro.product.model", "ro.product.device")
    parts = [f"{k}={props[k]}" for k in keys if k in props]
    parts.append("features=" + ",".join(features))
    return ("device::" + ";".join(parts)).encode()


def parse_host_banner(payload: bytes) -> tuple[str, frozenset[str]]:
    """Split the host's CNXN payload (``host::features=...``) into its kind and features."""
    text = payload.rstrip(b"\0").decode("utf-8", "replace")
    kind, _, rest = text.partition(":")
    features: frozenset[str] = frozenset()
    for item in rest.split(";"):
        key, _, value = item.partition("=")
        if key.strip(":") == "features":
            features = frozenset(f for f in value.split(",") if f)
    return kind, features


# --- shell protocol v2 --------------------------------------------------------------------

SHELL_PACKET = struct.Struct("<BI")


class ShellId(IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    EXIT = 3
    CLOSE_STDIN = 4
    WINDOW_SIZE_CHANGE = 5


def shell_packet(kind: ShellId, data: bytes) -> bytes:
    return SHELL_PACKET.pack(int(kind), len(data)) + data


class ShellPacketReader:
    """Reassemble shell-v2 packets from arbitrary chunks of the stream."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        packets: list[tuple[int, bytes]] = []
        while len(self._buf) >= SHELL_PACKET.size:
            kind, length = SHELL_PACKET.unpack_from(self._buf)
            end = SHELL_PACKET.size + length
            if len(self._buf) < end:
                break
            packets.append((kind, bytes(self._buf[SHELL_PACKET.size : end])))
            del self._buf[:end]
        return packets


@dataclass(frozen=True)
class ServiceRequest:
    """An OPEN's service string split the way adbd splits it.

    ``shell,v2,TERM=xterm,raw:ls -l`` -> name ``shell``, args ``["v2", "TERM=xterm", "raw"]``,
    command ``ls -l``.
    """

    name: str
    args: tuple[str, ...]
    command: str


def parse_service(raw: bytes) -> ServiceRequest:
    text = raw.rstrip(b"\0").decode("utf-8", "surrogateescape")
    head, sep, command = text.partition(":")
    if not sep:
        return ServiceRequest(head, (), "")
    name, *args = head.split(",")
    return ServiceRequest(name, tuple(a for a in args if a), command)


# --- sync protocol ------------------------------------------------------------------------

SYNC_REQUEST = struct.Struct("<4sI")
SYNC_DATA_MAX_BYTES = 64 * 1024  # SYNC_DATA_MAX in AOSP
SYNC_PATH_MAX_BYTES = 1024
STAT_V1 = struct.Struct("<4sIII")  # id, mode, size, mtime
DENT_V1 = struct.Struct("<4sIIII")  # id, mode, size, mtime, namelen


def sync_status(tag: bytes, value: int = 0) -> bytes:
    return SYNC_REQUEST.pack(tag, value)


def sync_fail(message: str) -> bytes:
    data = message.encode()
    return SYNC_REQUEST.pack(b"FAIL", len(data)) + data


def sync_data(chunk: bytes) -> bytes:
    return SYNC_REQUEST.pack(b"DATA", len(chunk)) + chunk


def dent(mode: int, size: int, mtime: int, name: bytes) -> bytes:
    return DENT_V1.pack(b"DENT", mode, size & 0xFFFFFFFF, mtime, len(name)) + name


# A LIST ends with a DONE padded to the size of a full DENT header (AOSP sends the struct).
LIST_DONE = DENT_V1.pack(b"DONE", 0, 0, 0, 0)
