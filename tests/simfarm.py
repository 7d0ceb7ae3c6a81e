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
