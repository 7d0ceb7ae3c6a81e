"""One phone, done right: commands with typed results, timeouts that kill on the phone,
streaming output, facts in one round trip, and recovery when the phone or server drops.

All device I/O of harness goes through :class:`Device`; it wraps adbutils (through
:func:`harness.device.adb.adb_client`, which never starts a server on its own).
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.device import devshell
from harness.device.adb import adb_client, port_open
from harness.device.facts import FACTS_COMMAND, DeviceFacts, parse_facts
from harness.errors import DeviceError, UsageError

SHELL_V2_HEADER_BYTES = 5
RECOVER_TIMEOUT_S = 30.0  # how long to wait for a vanished phone or server to come back
CONNECT_TIMEOUT_S = 10.0
FG_PID_DIR = "/data/local/tmp/.harness/fg"

OutputCallback = Callable[[str, str], None]  # (stream name "stdout"|"stderr", line)


class DeviceNotFound(DeviceError):
    """The adb server does not know this serial."""


class DeviceOffline(DeviceError):
    """The phone is known but offline."""


class DeviceUnauthorized(DeviceError):
    """The phone has not accepted this host's adb key."""


class AdbServerUnreachable(DeviceError):
    """No adb server answers at the endpoint."""


class DeviceDisconnected(DeviceError):
    """The connection broke while a command was running; its outcome is unknown."""


class CommandTimeout(DeviceError):
    """A command ran past its timeout; it has been killed on the phone."""


@dataclass(frozen=True)
class CommandResult:
    """What one device command did."""

    serial: str
    command: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def check(self) -> CommandResult:
        if not self.ok:
            tail = (self.err or self.out).strip().splitlines()[-1:] or [""]
            raise DeviceError(f"`{_short(self.command)}` exited with {self.exit_code}: "
                              f"{tail[0]}", serial=self.serial)
        return self


@dataclass
class AdbEndpoint:
    """An adb server: where it listens, and how to bring it back if it dies."""

    host: str = "127.0.0.1"
    port: int = 5037
    # Called to restart a dead server; None means "cannot restart" (a remote server).
    restart: Callable[[], None] | None = None
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"

    def client(self) -> Any:
        return adb_client(self.host, self.port, socket_timeout=CONNECT_TIMEOUT_S)

    def alive(self) -> bool:
        return port_open(self.port, self.host)

    @classmethod
    def local(cls, port: int = 5037) -> AdbEndpoint:
        """The user's own local server, restarted the way any adb client would."""

        def restart() -> None:
            import subprocess

            from harness.device.adb import adb_binary

            subprocess.run([adb_binary(), "-P", str(port), "start-server"], timeout=30,
                           capture_output=True, check=False)

        return cls("127.0.0.1", port, restart)


@dataclass
class Device:
    """One phone behind one adb server."""

    serial: str
    endpoint: AdbEndpoint = field(default_factory=AdbEndpoint)
    recover_timeout_s: float = RECOVER_TIMEOUT_S

    # ---- connection --------------------------------------------------------------------
    def _adb(self) -> Any:
        return self.endpoint.client().device(self.serial)

    def _open_service(self, service: str, timeout_s: float | None) -> Any:
        """Open a device service; map adb's failures to typed errors naming the serial."""
        try:
            # host:transport:SERIAL directly: adbutils' open_transport first asks the server
            # its version over a second connection, and its close() sleeps 10 ms.
            conn = self.endpoint.client().make_connection(timeout=CONNECT_TIMEOUT_S)
            conn.send_command(f"host:transport:{self.serial}")
            conn.check_okay()
            conn.send_command(service)
            conn.check_okay()
        except Exception as exc:
            raise self._classify(exc) from exc
        conn.conn.settimeout(timeout_s)
        return conn

    def _classify(self, exc: Exception) -> DeviceError:
        if isinstance(exc, DeviceError):
            return exc
        text = str(exc)
        lowered = text.lower()
        if "connect to adb server" in lowered or isinstance(exc, ConnectionRefusedError):
            return AdbServerUnreachable(f"no adb server at {self.endpoint.label}",
                                        serial=self.serial, hint="is the adb server running?")
        if "unauthorized" in lowered:
            return DeviceUnauthorized("unauthorized", serial=self.serial,
                                      hint="accept the USB debugging prompt on the phone")
        if "offline" in lowered:
            return DeviceOffline("offline", serial=self.serial,
                                 hint="reconnect the cable or `adb reconnect`")
        if "not found" in lowered or "no devices" in lowered:
            return DeviceNotFound(f"not found on {self.endpoint.label}", serial=self.serial,
                                  hint="`harness devices` lists the phones")
        return DeviceError(f"adb error: {text}", serial=self.serial)

    def state(self) -> str:
        """``device``, ``offline``, ``unauthorized``, ... or ``absent``."""
        try:
            for info in self.endpoint.client().list():
                if info.serial == self.serial:
                    return str(info.state)
        except Exception:
            return "absent"
        return "absent"

    def recover(self, timeout_s: float | None = None) -> None:
        """Wait (bounded) for the phone to come back: restart a dead local server, and
        ``adb connect`` network phones again. Raises the last typed error on time-out."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None
                                       else self.recover_timeout_s)
        last: DeviceError = DeviceNotFound("did not come back", serial=self.serial)
        while time.monotonic() < deadline:
            if not self.endpoint.alive():
                last = AdbServerUnreachable(f"no adb server at {self.endpoint.label}",
                                            serial=self.serial)
                if self.endpoint.restart is not None:
                    with contextlib.suppress(Exception):
                        self.endpoint.restart()
                time.sleep(0.2)
                continue
            state = self.state()
            if state == "device":
                return
            if state == "unauthorized":
                raise DeviceUnauthorized("unauthorized", serial=self.serial)
            if ":" in self.serial:
                with contextlib.suppress(Exception):
                    host, _, port = self.serial.rpartition(":")
                    self.endpoint.client().connect(f"{host}:{port}", timeout=CONNECT_TIMEOUT_S)
            last = DeviceOffline(state, serial=self.serial) if state != "absent" else last
            time.sleep(0.2)
        raise last

    # ---- commands ----------------------------------------------------------------------
    def run(self, command: devshell.Command, env: Mapping[str, str] | None = None,
            cwd: str | None = None, timeout: float | None = None, check: bool = False,
            on_output: OutputCallback | None = None) -> CommandResult:
        """Run a command through shell v2 and return its exit code, stdout and stderr.

        ``command`` as a list is quoted word by word; env values and cwd are always quoted.
        With ``timeout`` the command is killed *on the phone* (its whole process tree) when
        it runs over, and :class:`CommandTimeout` is raised. ``on_output`` receives each
        complete line as it arrives.
        """
        line = devshell.compose(command, env, cwd)
        token = None
        device_line = line
        if timeout is not None:
            token = f"{FG_PID_DIR}/{time.time_ns()}"
            device_line = self._with_pidfile(line, token)
        start = time.monotonic()
        try:
            code, out, err = self._shell_v2(device_line, timeout, on_output)
        except CommandTimeout:
            assert token is not None
            self._kill_pidfile(token)
            raise CommandTimeout(f"`{_short(line)}` timed out after {timeout:g}s and was "
                                 "killed on the phone", serial=self.serial) from None
        result = CommandResult(self.serial, line, code, out, err, time.monotonic() - start)
        return result.check() if check else result

    def shell(self, command: devshell.Command, **kwargs: Any) -> str:
        """Run and return stdout as text, raising on a non-zero exit."""
        return self.run(command, check=True, **kwargs).out

    def _with_pidfile(self, line: str, token: str) -> str:
        q = devshell.quote(token)
        return (f"mkdir -p {FG_PID_DIR} 2>/dev/null; echo $$ > {q}; ( {line} ); rc=$?; "
                f"rm -f {q}; exit $rc")

    def _kill_pidfile(self, token: str) -> None:
        q = devshell.quote(token)
        with contextlib.suppress(DeviceError):
            self.recover(min(self.recover_timeout_s, 10.0))
            pid_text = self._shell_v2(f"cat {q} 2>/dev/null; rm -f {q}", CONNECT_TIMEOUT_S,
                                      None)[1].decode().strip()
            if pid_text.isdigit():
                self._shell_v2(devshell.kill_tree_command(int(pid_text)), CONNECT_TIMEOUT_S,
                               None)

    def _shell_v2(self, line: str, timeout: float | None,
                  on_output: OutputCallback | None) -> tuple[int, bytes, bytes]:
        conn = self._open_service(f"shell,v2,raw:{line}", None)
        sock: socket.socket = conn.conn
        deadline = None if timeout is None else time.monotonic() + timeout
        chunks: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        pending: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        buf = bytearray()
        code: int | None = None
        try:
            while code is None:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    raise CommandTimeout("timeout", serial=self.serial)
                ready, _, _ = select.select([sock], [], [], wait)
                if not ready:
                    continue
                data = sock.recv(256 * 1024)
                if not data:
                    raise DeviceDisconnected("connection lost while the command ran; its "
                                             "outcome is unknown", serial=self.serial)
                buf += data
                while len(buf) >= SHELL_V2_HEADER_BYTES:
                    kind = buf[0]
                    size = int.from_bytes(buf[1:5], "little")
                    if len(buf) < SHELL_V2_HEADER_BYTES + size:
                        break
                    body = bytes(buf[SHELL_V2_HEADER_BYTES : SHELL_V2_HEADER_BYTES + size])
                    del buf[: SHELL_V2_HEADER_BYTES + size]
                    if kind in chunks:
                        chunks[kind] += body
                        if on_output is not None:
                            _emit_lines(pending[kind], body, kind, on_output)
                    elif kind == 3:
                        code = body[0] if body else 255
        except OSError as exc:
            raise DeviceDisconnected(f"connection lost: {exc}", serial=self.serial) from exc
        finally:
            close_connection(conn)
        if on_output is not None:
            for kind, rest in pending.items():
                if rest:
                    on_output("stdout" if kind == 1 else "stderr", rest.decode("utf-8",
                                                                             "replace"))
        return code, bytes(chunks[1]), bytes(chunks[2])

    # ---- facts and files ---------------------------------------------------------------
    def facts(self) -> DeviceFacts:
        """Everything harness records about the phone, read in one round trip."""
        result = self.run(FACTS_COMMAND, timeout=60)
        return parse_facts(self.serial, result.out)

    def push_bytes(self, data: bytes, path: str, mode: int = 0o644) -> None:
        try:
            self._adb().sync.push(data, path, mode=mode)
        except Exception as exc:
            raise self._classify(exc) from exc

    def pull(self, path: str, dest: Path) -> int:
        try:
            return int(self._adb().sync.pull(path, dest))
        except Exception as exc:
            raise self._classify(exc) from exc

    def read_file(self, path: str) -> bytes:
        return self.run(["cat", path], check=True).stdout


def close_connection(conn: Any) -> None:
    """Close an adbutils connection at once (its own close() sleeps 10 ms)."""
    with contextlib.suppress(Exception):
        conn.conn.close()


def _emit_lines(pending: bytearray, body: bytes, kind: int, callback: OutputCallback) -> None:
    pending += body
    while True:
        idx = pending.find(b"\n")
        if idx < 0:
            return
        line = pending[:idx].rstrip(b"\r").decode("utf-8", "replace")
        del pending[: idx + 1]
        callback("stdout" if kind == 1 else "stderr", line)


def _short(line: str, limit: int = 80) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def validate_serial(serial: str) -> str:
    if not serial or any(c.isspace() for c in serial) or "\0" in serial:
        raise UsageError(f"invalid serial {serial!r}")
    return serial
