"""The real adb binary (the one shipped in the adbutils wheel) and hermetic adb servers.

A hermetic server is one harness starts for itself on a private port: its own HOME (adb
writes ``~/.android/adbkey`` there), its own log directory, mDNS discovery and emulator port
probing off, listening on loopback only. It never touches a user's server on port 5037.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.device.adbseam import bundled_adb_path
from harness.device.errors import AdbError
from harness.device.procs import stop_pid
from harness.logs import get_logger

log = get_logger(__name__)

DEFAULT_ADB_PORT = 5037
SERVER_START_TIMEOUT_S = 15.0  # adb's own start-up takes ~0.1 s; generous for loaded CI
ADB_COMMAND_TIMEOUT_S = 30.0


def adb_binary() -> str:
    """Path of the adb binary: ``HARNESS_ADB`` / ``ADBUTILS_ADB_PATH``, else adbutils' own."""
    for var in ("HARNESS_ADB", "ADBUTILS_ADB_PATH"):
        value = os.environ.get(var)
        if value:
            return value
    bundled = bundled_adb_path()  # the wheel's platform-tools binary
    if bundled is not None:
        return bundled
    found = shutil.which("adb")
    if found:
        return found
    raise AdbError("no adb binary found", hint="pip install adbutils, or set HARNESS_ADB")


def free_port() -> int:
    """A currently free loopback TCP port (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def hermetic_env(home: Path, port: int) -> dict[str, str]:
    """Environment for an adb server or client bound to a private, isolated server."""
    env = dict(os.environ)
    home.mkdir(parents=True, exist_ok=True)
    (home / "tmp").mkdir(exist_ok=True)
    env.update({
        "HOME": str(home),  # adbkey goes to $HOME/.android
        "ANDROID_USER_HOME": str(home / ".android"),
        "TMPDIR": str(home / "tmp"),
        "ANDROID_ADB_LOG_PATH": str(home / "adb-server.log"),
        "ANDROID_ADB_SERVER_PORT": str(port),
        "ADB_MDNS_AUTO_CONNECT": "",  # never auto-connect to anything found by mDNS
        "ADB_MDNS": "0",  # no mDNS discovery at all
        "ADB_USB": "0",  # never claim USB phones: they belong to the user's own server
        "ADB_EMU": "0",  # no emulator port probing (5555-5585) ...
        "ADB_LOCAL_TRANSPORT_MAX_PORT": "5553",  # ... and, for older adb, an empty range
    })
    for var in ("ANDROID_SERIAL", "ADB_SERVER_SOCKET", "ADB_TRACE", "ADB_VENDOR_KEYS"):
        env.pop(var, None)
    return env


@dataclass
class AdbServer:
    """An adb server process harness started and owns (by PID)."""

    port: int
    home: Path
    pid: int | None = None

    @property
    def env(self) -> dict[str, str]:
        return hermetic_env(self.home, self.port)

    def start(self) -> int:
        """Start ``adb nodaemon server`` on loopback:port; return its PID."""
        if port_open(self.port):
            raise AdbError(f"port {self.port} is already in use; refusing to share a server")
        env = self.env  # creates the home directory
        server_log = (self.home / "adb-server.log").open("ab")
        with server_log:
            proc = subprocess.Popen(
                [adb_binary(), "-P", str(self.port), "nodaemon", "server"],
                env=env, stdin=subprocess.DEVNULL, stdout=server_log, stderr=server_log,
                start_new_session=True, cwd=self.home,
            )
        self.pid = proc.pid
        log.info("started adb server on port %d (pid %d)", self.port, proc.pid)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not port_open(self.port):
            if proc.poll() is not None:
                raise AdbError(f"adb server on port {self.port} exited with {proc.returncode}",
                               hint=f"see {self.home / 'adb-server.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise AdbError(f"adb server did not listen on port {self.port}")
            time.sleep(0.02)
        return proc.pid

    def stop(self) -> None:
        if self.pid is not None:
            log.info("stopping adb server on port %d (pid %d)", self.port, self.pid)
            stop_pid(self.pid, expect="adb")
            self.pid = None

    def run(self, *args: str, timeout: float = ADB_COMMAND_TIMEOUT_S,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an adb client command against this server."""
        cmd = [adb_binary(), "-P", str(self.port), *args]
        shown = f"adb {' '.join(args)}"
        log.debug("port %d: %s", self.port, shown)
        try:
            result = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                                    timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AdbError(f"{shown} timed out after {timeout:g}s", command=shown,
                           stdout=exc.stdout, stderr=exc.stderr) from exc
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise AdbError(f"{shown} failed: {detail[-1] if detail else '?'}", command=shown,
                           returncode=result.returncode, stdout=result.stdout,
                           stderr=result.stderr)
        return result
