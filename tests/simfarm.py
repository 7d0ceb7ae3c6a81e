"""A thin test-side view of a running virtual farm: adb commands, adbutils devices, phones.

Nothing here is mocked: ``adb`` runs the real binary against the farm's own server, and
``device`` returns a real adbutils device talking to that server.

harness itself speaks the adb host protocol without adbutils; the tests use adbutils as an
independent client (``adbutils_client``), one that never starts a server. Stock adbutils runs
``adb start-server`` (on the default port 5037) when it cannot reach the server it was given:
that would start or disturb the user's own server while we meant a private one.
``_NoAutostartConnection`` raises instead. That one override is the only adbutils internal
used (``_safe_connect``, which ``AdbConnection.__init__`` calls); the version bound in
``setup.cfg`` is what ``tests/unit/device/test_adbseam.py`` pins it against.

``adbutils.install`` (APK install over HTTP) imports ``requests`` and ``urllib3``, for a
feature the tests never use. Unless something imported it already, an empty stand-in for its
one name (the ``InstallExtension`` mixin of ``AdbDevice``) is registered before adbutils is
imported, so ``AdbDevice.install`` is absent.
"""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
import types
from dataclasses import dataclass


def _without_apk_install() -> None:
    if "adbutils.install" in sys.modules:
        return
    stand_in = types.ModuleType("adbutils.install", "tests: APK install left out (simfarm)")

    class InstallExtension:
        pass

    stand_in.InstallExtension = InstallExtension  # type: ignore[attr-defined]
    sys.modules["adbutils.install"] = stand_in


_without_apk_install()

import adbutils  # noqa: E402 - after the stand-in above

from harness.device.adb import AdbServer  # noqa: E402
from harness.device.device import Device  # noqa: E402
from harness.sim.farm import Farm, FarmState, PhoneRecord  # noqa: E402


class _NoAutostartConnection(adbutils.AdbConnection):  # type: ignore[misc]  # untyped base
    def _safe_connect(self) -> socket.socket:
        # adbutils' own version runs `adb start-server` and retries when this fails.
        sock: socket.socket = self._create_socket()
        return sock


class _Client(adbutils.AdbClient):  # type: ignore[misc]  # untyped base
    """An adbutils client whose connections never start a server."""

    def __init__(self, host: str, port: int, socket_timeout: float | None) -> None:
        super().__init__(host=host, port=port, socket_timeout=socket_timeout)
        self._timeout_s = socket_timeout

    def make_connection(self, timeout: float | None = None) -> adbutils.AdbConnection:
        conn = _NoAutostartConnection(self.host, self.port)
        chosen = timeout or self._timeout_s
        if chosen:
            conn.conn.settimeout(chosen)
        return conn


@functools.cache
def adbutils_client(host: str, port: int, socket_timeout: float | None) -> adbutils.AdbClient:
    """The adbutils client for one server (cached: a client holds no connection)."""
    return _Client(host, port, socket_timeout)


@dataclass
class SimFarm:
    farm: Farm

    @property
    def state(self) -> FarmState:
        state = self.farm.load()
        assert state is not None, "farm is not running"
        return state

    @property
    def server(self) -> AdbServer:
        return self.farm.adb_server(self.state)

    @property
    def phones(self) -> list[PhoneRecord]:
        return list(self.state.phones)

    def phone(self, profile: str) -> PhoneRecord:
        for record in self.state.phones:
            if record.profile == profile:
                return record
        raise LookupError(profile)

    def adb(self, *args: str, timeout: float = 120, check: bool = False,
            input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run the real adb binary against the farm's server (bytes in, bytes out)."""
        from harness.device.adb import adb_binary

        result = subprocess.run([adb_binary(), "-P", str(self.state.adb_port), *args],
                                env=self.server.env, capture_output=True, timeout=timeout,
                                input=input, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"adb {args} failed: {result.stderr!r}")
        return result

    def client(self) -> adbutils.AdbClient:
        # Never adbutils' stock client: it would start a server on 5037 if ours were down.
        return adbutils_client("127.0.0.1", self.state.adb_port, 60)

    def device(self, record: PhoneRecord) -> adbutils.AdbDevice:
        return self.client().device(record.adb_serial)


def phone_runs(device: Device, binary: str) -> list[str]:
    """Processes running ``binary`` that this phone's background runs started.

    A virtual phone is a mount namespace, not a PID namespace: its ``ps`` lists every
    process of the host, other phones' and other test sessions' included. A background run
    leads its own process group (``setsid``), so its processes are the ones whose PGID is
    the PID recorded in one of this phone's run directories.
    """
    from harness.device.background import RUNS_DIR

    leaders = set(device.run(f"cat {RUNS_DIR}/*/pid 2>/dev/null", timeout=30).out.split())
    found = []
    for line in device.run("ps -eo pgid,args", timeout=30).out.splitlines()[1:]:
        pgid, _, args = line.strip().partition(" ")
        if pgid in leaders and binary in args:
            found.append(args)
    return found
