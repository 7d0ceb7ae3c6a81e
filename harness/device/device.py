"""One phone, done right: commands with typed results, timeouts that kill on the phone,
streaming output, facts in one round trip, and recovery when the phone or server drops.

All device I/O of harness goes through :class:`Device`; it reaches the adb server only through
:mod:`harness.device.adbseam` (its protocol over a socket; it never starts a server on its
own). Failures are the typed errors of :mod:`harness.device.errors`; only what adb, sockets
and the OS raise is mapped to them, so a bug in harness stays a bug.
"""

from __future__ import annotations

import contextlib
import select
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import cancel
from harness.device import adbseam, devshell
from harness.device.adb import adb_binary, port_open
from harness.device.errors import (
    AdbServerUnreachable,
    CommandFailed,
    CommandTimeout,
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
)
from harness.errors import HarnessError
from harness.logs import get_logger

if TYPE_CHECKING:  # the facts parser is imported where facts are read (~3 ms otherwise)
    from harness.device.facts import DeviceFacts

log = get_logger(__name__)

SHELL_V2_HEADER_BYTES = 5
RECOVER_TIMEOUT_S = 30.0  # how long to wait for a vanished phone or server to come back
CONNECT_TIMEOUT_S = 10.0
PRIMED_TEMPS_MAX_S = 2.0  # how old temperatures read by another command may be (prime_temps)
FG_PID_DIR = "/data/local/tmp/.harness/fg"

OutputCallback = Callable[[str, str], None]  # (stream name "stdout"|"stderr", line)


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
        """Self when the command exited 0, else :class:`CommandFailed` carrying it all."""
        if not self.ok:
            last = (self.err or self.out).strip().splitlines()[-1:] or [""]
            raise self.failed(f"`{_short(self.command)}` exited with {self.exit_code}: "
                              f"{last[0]}")
        return self

    def failed(self, message: str) -> CommandFailed:
        """A :class:`CommandFailed` with ``message`` and this command, exit code and output."""
        return CommandFailed(message, serial=self.serial, command=self.command,
                             returncode=self.exit_code, stdout=self.stdout, stderr=self.stderr)


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

    def devices(self) -> list[adbseam.DeviceInfo]:
        """Every phone this server knows (``adb devices``); raises when it is unreachable."""
        return adbseam.list_devices(self, CONNECT_TIMEOUT_S)

    def alive(self) -> bool:
        return port_open(self.port, self.host)

    @classmethod
    def local(cls, port: int = 5037) -> AdbEndpoint:
        """The user's own local server, restarted the way any adb client would."""

        def restart() -> None:
            subprocess.run([adb_binary(), "-P", str(port), "start-server"], timeout=30,
                           capture_output=True, check=False)

        return cls("127.0.0.1", port, restart)


@dataclass
class Device:
    """One phone behind one adb server."""

    serial: str
    endpoint: AdbEndpoint = field(default_factory=AdbEndpoint)
    recover_timeout_s: float = RECOVER_TIMEOUT_S
    # The last full facts read (monotonic time it began, facts): what device selection read,
    # so that the same command's run can take its identity instead of reading it again.
    _facts_read: tuple[float, DeviceFacts] | None = field(default=None, init=False,
                                                          repr=False, compare=False)
    # Temperatures read by another command's round trip just now (prime_temps): the next
    # temps() takes them once instead of asking the phone again.
    _temps_read: tuple[float, DeviceFacts] | None = field(default=None, init=False,
                                                          repr=False, compare=False)

    # ---- connection --------------------------------------------------------------------
    def open_service(self, service: str, timeout_s: float | None) -> socket.socket:
        """A socket on a device service (``sync:``, ``shell,v2,raw:...``); the caller closes
        it. adb's failures are typed errors naming the serial."""
        return adbseam.open_service(self.endpoint, self.serial, service, CONNECT_TIMEOUT_S,
                                    timeout_s)

    def state(self) -> str:
        """``device``, ``offline``, ``unauthorized``, ... or ``absent``."""
        try:
            infos = self.endpoint.devices()
        except DeviceError:
            return "absent"
        return next((i.state for i in infos if i.serial == self.serial), "absent")

    def recover(self, timeout_s: float | None = None) -> None:
        """Wait (bounded) for the phone to come back: restart a dead local server, and
        ``adb connect`` network phones again. Raises the last typed error on time-out."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None
                                       else self.recover_timeout_s)
        last: DeviceError = DeviceNotFound("did not come back", serial=self.serial)
        log.info("%s: waiting for the phone to come back (up to %.0fs)", self.serial,
                 deadline - time.monotonic())
        while time.monotonic() < deadline:
            if not self.endpoint.alive():
                last = AdbServerUnreachable(f"no adb server at {self.endpoint.label}",
                                            serial=self.serial)
                self._restart_server()
                cancel.sleep(0.2)
                continue
            state = self.state()
            if state == "device":
                log.info("%s: back", self.serial)
                return
            if state == "unauthorized":
                raise DeviceUnauthorized("unauthorized", serial=self.serial)
            if ":" in self.serial:
                try:
                    adbseam.connect(self.endpoint, self.serial, CONNECT_TIMEOUT_S)
                except DeviceError as exc:
                    log.debug("%s: adb connect: %s", self.serial, exc)
            last = DeviceOffline(state, serial=self.serial) if state != "absent" else last
            cancel.sleep(0.2)
        log.info("%s: did not come back: %s", self.serial, last)
        raise last

    def _restart_server(self) -> None:
        if self.endpoint.restart is None:
            return
        log.warning("adb server %s is gone; restarting it", self.endpoint.label)
        try:
            self.endpoint.restart()
        except (HarnessError, OSError, subprocess.SubprocessError) as exc:
            log.warning("restarting adb server %s failed: %s", self.endpoint.label, exc)

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
        log.debug("%s: run %s", self.serial, _short(line, 200))
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
            log.info("%s: `%s` timed out after %gs; killing it on the phone", self.serial,
                        _short(line), timeout)
            self._kill_pidfile(token)
            raise CommandTimeout(f"`{_short(line)}` timed out after {timeout:g}s and was "
                                 "killed on the phone", serial=self.serial,
                                 command=line) from None
        result = CommandResult(self.serial, line, code, out, err, time.monotonic() - start)
        log.debug("%s: exit %d in %.3fs", self.serial, code, result.duration_s)
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
        sock = self.open_service(f"shell,v2,raw:{line}", None)
        deadline = None if timeout is None else time.monotonic() + timeout
        chunks: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        pending: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        buf = bytearray()
        code: int | None = None
        try:
            while code is None:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    raise CommandTimeout("timeout", serial=self.serial, command=line)
                ready, _, _ = select.select([sock], [], [], wait)
                if not ready:
                    continue
                data = sock.recv(256 * 1024)
                if not data:
                    cancel.check()  # our own shutdown of the socket (harness.cancel)
                    raise DeviceDisconnected("connection lost while the command ran; its "
                                             "outcome is unknown", serial=self.serial,
                                             command=line)
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
                            split_lines(pending[kind], body, _STREAMS[kind], on_output)
                    elif kind == 3:
                        code = body[0] if body else 255
        except OSError as exc:
            cancel.check()
            raise DeviceDisconnected(f"connection lost: {exc}", serial=self.serial,
                                     command=line) from exc
        finally:
            sock.close()
        if on_output is not None:
            for kind, rest in pending.items():
                if rest:
                    on_output(_STREAMS[kind], rest.decode("utf-8", "replace"))
        return code, bytes(chunks[1]), bytes(chunks[2])

    # ---- facts and files ---------------------------------------------------------------
    def facts(self) -> DeviceFacts:
        """Everything harness records about the phone, read in one round trip."""
        read_at = time.monotonic()
        from harness.device.facts import FACTS_COMMAND, parse_facts

        self._temps_read = None  # read again here, later: a primed read is older than these

        result = self.run(FACTS_COMMAND, timeout=60)
        facts = parse_facts(self.serial, result.out)
        self.remember_facts(facts, read_at)
        return facts

    def remember_facts(self, facts: DeviceFacts, read_at: float) -> None:
        """Note a full facts read that began at ``read_at`` (``time.monotonic()``), e.g. one
        made through another Device object for the same phone."""
        self._facts_read = (read_at, facts)

    def fresh_facts(self, max_age_s: float) -> DeviceFacts:
        """:meth:`facts`, one round trip cheaper on the phone when a full read began less
        than ``max_age_s`` ago in this process: its identity, memory and storage, with the
        battery and temperatures read now (:meth:`temps`: they are never reused)."""
        known = self._facts_read
        if known is None or time.monotonic() - known[0] >= max_age_s:
            return self.facts()
        now = self.temps()
        return replace(known[1], battery_level=now.battery_level,
                       battery_temp_c=now.battery_temp_c, thermal_c=now.thermal_c)

    def temps(self) -> DeviceFacts:
        """Battery level and temperatures only (the other fields empty), one round trip
        cheaper on the phone than :meth:`facts` (no getprop, meminfo, df, cpufreq)."""
        from harness.device.facts import TEMPS_COMMAND, parse_facts

        primed, self._temps_read = self._temps_read, None
        if primed is not None and time.monotonic() - primed[0] < PRIMED_TEMPS_MAX_S:
            return primed[1]
        result = self.run(TEMPS_COMMAND, timeout=60)
        return parse_facts(self.serial, result.out)

    def prime_temps(self, text: str, read_at: float) -> bool:
        """Keep what ``facts.TEMPS_COMMAND`` printed inside another command (begun at
        ``read_at``) for the next :meth:`temps` within :data:`PRIMED_TEMPS_MAX_S`. An
        output cut short (no end section) is not kept; returns whether it was."""
        from harness.device.facts import SECTION, parse_facts

        if f"{SECTION}end" not in text:
            return False
        self._temps_read = (read_at, parse_facts(self.serial, text))
        return True

    def push_bytes(self, data: bytes, path: str, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` on the phone (sync service)."""
        log.debug("%s: push %d bytes to %s", self.serial, len(data), path)
        adbseam.push_bytes(self.endpoint, self.serial, data, path, mode, CONNECT_TIMEOUT_S)

    def pull(self, path: str, dest: Path) -> int:
        """Copy the phone's file ``path`` to ``dest``; return its size. A local write failure
        is a :class:`~harness.errors.LocalFileError`, not a device error."""
        log.debug("%s: pull %s to %s", self.serial, path, dest)
        return adbseam.pull_file(self.endpoint, self.serial, path, dest, CONNECT_TIMEOUT_S)


_STREAMS = {1: "stdout", 2: "stderr"}  # shell v2 packet ids of the output streams


def split_lines(pending: bytearray, data: bytes, name: str, callback: OutputCallback) -> None:
    """Append ``data`` to ``pending`` and hand each complete line (without its ``\\n`` or
    ``\\r\\n``) to ``callback(name, line)``; an incomplete last line stays in ``pending``."""
    pending += data
    while (idx := pending.find(b"\n")) >= 0:
        callback(name, pending[:idx].rstrip(b"\r").decode("utf-8", "replace"))
        del pending[: idx + 1]


def _short(line: str, limit: int = 80) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."

