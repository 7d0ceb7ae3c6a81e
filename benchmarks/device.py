"""Device benchmark: reading a phone's facts, and Device.run against a bare `adb shell`.

Starts its own one-phone virtual farm (temporary HARNESS_HOME, private adb port). Prints,
median of ``--repeat``, alternating:

  facts:   Device.facts() time and its adb round trips (shell sessions opened)
  run:     Device.run("true") in-process  vs  `adb -s SERIAL shell true` (whole process)
  whole:   the `harness devices --json` command with its Python start-up

    python benchmarks/device.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness.device.adb import adb_binary
from harness.device.device import AdbEndpoint, Device
from harness.sim.farm import private_farm


class CountingDevice(Device):
    """Counts the device services opened: one per adb round trip."""

    opened = 0

    def open_service(self, service: str, timeout_s: float | None) -> socket.socket:
        CountingDevice.opened += 1
        return super().open_service(service, timeout_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with private_farm(time_scale=0.01) as (farm, state, tmp):
        phone = state.phones[0]
        device = CountingDevice(phone.adb_serial, AdbEndpoint("127.0.0.1", state.adb_port))
        adb = [adb_binary(), "-P", str(state.adb_port), "-s", phone.adb_serial]
        env = farm.adb_server(state).env
        facts_s, facts_trips, run_s, adb_s = [], [], [], []
        for _ in range(args.repeat):
            CountingDevice.opened = 0
            start = time.perf_counter()
            device.facts()
            facts_s.append(time.perf_counter() - start)
            facts_trips.append(CountingDevice.opened)
            start = time.perf_counter()
            device.run("true")
            run_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run([*adb, "shell", "true"], env=env, check=True)
            adb_s.append(time.perf_counter() - start)
        whole = []
        farm_file = Path(tmp) / "farm.yaml"
        farm_file.write_text(f"servers: [{{name: b, port: {state.adb_port}}}]\nsim: false\n")
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "harness.cli", "devices", "--json",
                            "--farm", str(farm_file)], check=True, capture_output=True)
            whole.append(time.perf_counter() - start)
    med = statistics.median
    print(f"device benchmark, median of {args.repeat}, virtual phone on loopback")
    print(f"facts:  {med(facts_s) * 1000:7.2f} ms, {max(facts_trips)} adb round trip(s) "
          "(props, meminfo, df, battery, thermal zones, cpufreq, uid, su)")
    print(f"run:    Device.run('true') {med(run_s) * 1000:7.2f} ms   "
          f"adb shell true {med(adb_s) * 1000:7.2f} ms   "
          f"ratio Device.run/adb = {med(run_s) / med(adb_s):.2f}")
    print(f"whole:  `harness devices --json` {med(whole) * 1000:7.1f} ms (Python start-up, "
          "discovery, facts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
