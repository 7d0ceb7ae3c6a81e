"""A device-side ADB daemon on a loopback TCP port, as the real adb server sees a phone.

The real adb server adopts it with ``adb connect 127.0.0.1:PORT``. It speaks the transport
protocol (CNXN, OPEN, OKAY, WRTE, CLSE with one-message flow control, no auth), the shell
protocol v1 and v2, ``exec:`` and the sync protocol (STAT, LIST, SEND, RECV, QUIT). Only the
features implemented here are advertised.

One asyncio event loop serves every connection; each connection multiplexes streams. A broken
or hostile peer (garbage bytes, a truncated packet) closes its own connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from harness.logs import get_logger
from harness.sim import protocol as p
from harness.sim.protocol import Command, Message, ProtocolError

log = get_logger(__name__)

# Features we implement, advertised in our CNXN banner: ``shell_v2`` (separate stdout/stderr
# and exit status; pty and raw) and ``fixed_push_mkdir`` (SEND creates parent directories).
# No stat_v2/ls_v2/sendrecv_v2, so the host uses sync v1; no ``cmd``/``abb`` (no package
# manager behind them).
DEVICE_FEATURES = ["shell_v2", "fixed_push_mkdir"]

# Bytes a stream may hold from the host before we stop acknowledging its writes
# (backpressure: the host sends no more WRTE on that stream until our OKAY).
STREAM_BUFFER_LIMIT_BYTES = 4 * 1024 * 1024


class StreamClosed(Exception):
    """The host closed the stream (CLSE) or the connection went away."""


@dataclass(eq=False)
class Stream:
    """One ADB stream: the device end of a host socket opened with OPEN."""

    conn: Connection
    local_id: int
    remote_id: int
    service: p.ServiceRequest
    _buf: bytearray = field(default_factory=bytearray)
    _data_ready: asyncio.Event = field(default_factory=asyncio.Event)
    _can_write: asyncio.Event = field(default_factory=asyncio.Event)
    _ack_pending: bool = False
    closed: bool = False
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._can_write.set()

    # ---- host -> device ----
    def _feed(self, data: bytes) -> None:
        self._buf += data
        self._data_ready.set()
        if len(self._buf) < STREAM_BUFFER_LIMIT_BYTES:
            self.conn.send(Message(Command.OKAY, self.local_id, self.remote_id))
        else:
            self._ack_pending = True

    def _consumed(self) -> None:
        if self._ack_pending and len(self._buf) < STREAM_BUFFER_LIMIT_BYTES and not self.closed:
            self._ack_pending = False
            self.conn.send(Message(Command.OKAY, self.local_id, self.remote_id))

    async def read_some(self) -> bytes:
        """Whatever the host has sent so far (at least one byte); b"" once closed."""
        while not self._buf:
            if self.closed:
                return b""
            self._data_ready.clear()
            await self._data_ready.wait()
        data = bytes(self._buf)
        self._buf.clear()
        self._consumed()
        return data

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self.closed:
                raise StreamClosed
            self._data_ready.clear()
            await self._data_ready.wait()
        with memoryview(self._buf) as view:
            data = bytes(view[:n])
        del self._buf[:n]
        self._consumed()
        return data

    async def read_into_fd(self, fd: int, n: int) -> OSError | None:
        """Move ``n`` bytes from the host straight into a file descriptor (no extra copy).

        A write error does not stop the transfer: the bytes are still consumed, so the
        protocol stays in step; the first error is returned.
        """
        error: OSError | None = None
        while n > 0:
            while not self._buf:
                if self.closed:
                    raise StreamClosed
                self._data_ready.clear()
                await self._data_ready.wait()
            take = min(n, len(self._buf))
            if error is None:
                try:
                    with memoryview(self._buf) as view:
                        done = 0
                        while done < take:
                            done += os.write(fd, view[done:take])
                except OSError as exc:
                    error = exc
            del self._buf[:take]
            n -= take
            self._consumed()
        return error

    # ---- device -> host ----
    async def write(self, data: bytes | memoryview) -> None:
        """Send data, waiting for the host's OKAY after every message (flow control)."""
        view = memoryview(data)
        step = self.conn.max_payload
        for start in range(0, len(view), step):
            await self._can_write.wait()
            if self.closed:
                raise StreamClosed
            self._can_write.clear()
            self.conn.send_payload(Command.WRTE, self.local_id, self.remote_id,
                                   view[start : start + step])
            await self.conn.drain()

    def _acked(self) -> None:
        self._can_write.set()

    def close(self) -> None:
        """Close from our side: tell the host, run cleanups."""
        if not self.closed:
            self.conn.send(Message(Command.CLSE, self.local_id, self.remote_id))
        self._closed_by_peer()

    def _closed_by_peer(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._data_ready.set()
        self._can_write.set()
        self.conn.streams.pop(self.local_id, None)
        for callback in self.on_close:
            with contextlib.suppress(Exception):
                callback()


ServiceHandler = Callable[[Stream], Awaitable[None]]


@dataclass
class DeviceIdentity:
    """What a phone tells the host when it connects."""

    props: dict[str, str]
    features: list[str] = field(default_factory=lambda: list(DEVICE_FEATURES))


class Connection:
    """One TCP connection from the adb server."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        identity: DeviceIdentity,
        services: dict[str, ServiceHandler],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.identity = identity
        self.services = services
        self.max_payload = p.MAX_PAYLOAD_BYTES
        self.online = False
        self.streams: dict[int, Stream] = {}
        self._next_id = 1
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, msg: Message) -> None:
        if not self.writer.is_closing():
            self.writer.write(msg.encode())

    def send_payload(self, command: int, arg0: int, arg1: int, payload: memoryview) -> None:
        """Send a message without copying a large payload into a new bytes object."""
        if self.writer.is_closing():
            return
        self.writer.write(
            p.HEADER.pack(command, arg0, arg1, len(payload), 0, command ^ 0xFFFFFFFF)
        )
        self.writer.write(payload)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def serve(self) -> None:
        peer = self.writer.get_extra_info("peername")
        try:
            while True:
                header = p.decode_header(await self.reader.readexactly(p.HEADER_SIZE_BYTES))
                payload = await self.reader.readexactly(header.length) if header.length else b""
                if header.length > self.max_payload and self.online:
                    raise ProtocolError(f"payload {header.length} exceeds {self.max_payload}")
                self._dispatch(Message(header.command, header.arg0, header.arg1, payload))
                await self.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            log.debug("connection from %s ended", peer)
        except ProtocolError as exc:
            log.warning("closing connection from %s: %s", peer, exc)
        finally:
            self.close()

    def close(self) -> None:
        for stream in list(self.streams.values()):
            stream._closed_by_peer()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()

    def _dispatch(self, msg: Message) -> None:
        if msg.command == Command.CNXN:
            self._on_connect(msg)
        elif not self.online:
            # adbd ignores everything but CNXN (and AUTH, which we never ask for) until online.
            log.debug("ignoring %s before CNXN", msg.name)
        elif msg.command == Command.OPEN:
            self._on_open(msg)
        elif msg.command == Command.WRTE:
            stream = self.streams.get(msg.arg1)
            if stream is None or stream.remote_id != msg.arg0:
                # Unknown stream: tell the host to close its end, as adbd does.
                self.send(Message(Command.CLSE, 0, msg.arg0))
            else:
                stream._feed(msg.payload)
        elif msg.command == Command.OKAY:
            stream = self.streams.get(msg.arg1)
            if stream is not None:
                stream._acked()
        elif msg.command == Command.CLSE:
            stream = self.streams.get(msg.arg1)
            if stream is not None and stream.remote_id == msg.arg0:
                stream._closed_by_peer()
        else:
            log.debug("ignoring %s", msg.name)

    def _on_connect(self, msg: Message) -> None:
        if msg.arg0 < p.A_VERSION_MIN:
            raise ProtocolError(f"unsupported protocol version 0x{msg.arg0:08x}")
        if msg.arg0 < p.A_VERSION_SKIP_CHECKSUM and p.payload_checksum(msg.payload) != 0:
            log.debug("old host: checksums in use")
        # A reconnect on the same TCP connection resets every stream, as adbd does.
        for stream in list(self.streams.values()):
            stream._closed_by_peer()
        self.max_payload = max(4096, min(msg.arg1, p.MAX_PAYLOAD_BYTES))
        banner = p.connection_banner(self.identity.props, self.identity.features)
        self.send(Message(Command.CNXN, p.A_VERSION, self.max_payload, banner))
        self.online = True

    def _on_open(self, msg: Message) -> None:
        service = p.parse_service(msg.payload)
        handler = self.services.get(service.name)
        if handler is None or msg.arg0 == 0:
            log.info("refusing service %r", service.name)
            self.send(Message(Command.CLSE, 0, msg.arg0))
            return
        local_id = self._next_id
        self._next_id += 1
        stream = Stream(self, local_id, msg.arg0, service)
        self.streams[local_id] = stream
        self.send(Message(Command.OKAY, local_id, msg.arg0))
        task = asyncio.get_running_loop().create_task(self._run_service(handler, stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_service(self, handler: ServiceHandler, stream: Stream) -> None:
        try:
            await handler(stream)
        except StreamClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("service %s failed", stream.service.name)
        finally:
            stream.close()
            await self.drain()


class AdbDaemon:
    """Serve connections on a listening socket until stopped."""

    def __init__(self, identity: DeviceIdentity, services: dict[str, ServiceHandler]) -> None:
        self.identity = identity
        self.services = services
        self.connections: set[Connection] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Header and payload go out as separate writes: without NODELAY, Nagle holds the
            # second one for the peer's delayed ACK (40 ms per message on Linux).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(reader, writer, self.identity, self.services)
        self.connections.add(conn)
        try:
            await conn.serve()
        finally:
            self.connections.discard(conn)

    def drop_connections(self) -> int:
        """Close every host connection (a simulated USB drop); return how many."""
        count = len(self.connections)
        for conn in list(self.connections):
            conn.close()
        return count
