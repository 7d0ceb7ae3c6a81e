"""A thin test-side view of a running virtual farm: adb commands, adbutils devices, phones.

Nothing here is mocked: ``adb`` runs the real binary against the farm's own server, and
``device`` returns a real adbutils device talking to that server.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import adbutils

from harness.device import adbseam
from harness.device.adb import AdbServer
from harness.device.device import Device
from harness.sim.farm import Farm, FarmState, PhoneRecord


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
        return adbseam.client("127.0.0.1", self.state.adb_port, 60)

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
