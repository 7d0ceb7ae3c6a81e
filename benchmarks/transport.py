"""Transport benchmark: push and pull through the adb binary and through adbutils.

Starts its own one-phone virtual farm in a temporary HARNESS_HOME (private adb port), makes
a file of ``--size-mib`` random bytes, and times each way ``--repeat`` times, alternating
the clients. Prints MB/s (median) side by side, and the CPU seconds each process spent per
GiB — the process that is busiest is the bottleneck, which shows whether the virtual phone
limits what later benchmarks compare.

    python benchmarks/transport.py [--size-mib 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import adbutils

from harness.assets.hashcache import sha256_file as sha256
from harness.device.adb import adb_binary
from harness.sim.farm import private_farm

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def children_cpu_seconds() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with private_farm(time_scale=0.01) as (farm, state, tmp):
        phone = state.phones[0]
        server = farm.adb_server(state)
        src = tmp / "payload.bin"
        with src.open("wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(1 << 20))
        size = src.stat().st_size
        want = sha256(src)
        remote = "/data/local/tmp/bench_payload.bin"
        back = tmp / "back.bin"
        adb = [adb_binary(), "-P", str(state.adb_port), "-s", phone.adb_serial]
        device = adbutils.AdbClient(host="127.0.0.1", port=state.adb_port,
                                    socket_timeout=600).device(phone.adb_serial)

        def adb_push() -> None:
            subprocess.run([*adb, "push", str(src), remote], env=server.env, check=True,
                           capture_output=True)

        def adb_pull() -> None:
            subprocess.run([*adb, "pull", remote, str(back)], env=server.env, check=True,
                           capture_output=True)

        def lib_push() -> None:
            device.sync.push(src, remote)

        def lib_pull() -> None:
            device.sync.pull(remote, back)

        cases: dict[str, Callable[[], None]] = {
            "push  adb binary": adb_push, "push  adbutils  ": lib_push,
            "pull  adb binary": adb_pull, "pull  adbutils  ": lib_pull,
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, dict[str, float]] = {
            name: {"phone": 0.0, "adb server": 0.0, "client": 0.0} for name in cases}
        for _ in range(args.repeat):
            for name, fn in cases.items():
                before = (cpu_seconds(phone.pid), cpu_seconds(state.adb_pid),
                          children_cpu_seconds() + time.process_time())
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
                after = (cpu_seconds(phone.pid), cpu_seconds(state.adb_pid),
                         children_cpu_seconds() + time.process_time())
                for key, b, a in zip(cpu[name], before, after, strict=True):
                    cpu[name][key] += a - b
                if name.startswith("pull"):
                    assert sha256(back) == want, f"{name}: sha256 mismatch"
                    back.unlink()
        gib = size / (1 << 30) * args.repeat
        print(f"transport, {args.size_mib} MiB each way, median of {args.repeat}, "
              f"virtual phone {phone.serial} on loopback")
        print(f"{'case':18} {'MB/s':>8} {'s':>7}   CPU s per GiB: phone / adb server / "
              "client")
        medians = {}
        for name in cases:
            med = statistics.median(times[name])
            medians[name] = size / med / 1e6
            c = cpu[name]
            print(f"{name:18} {medians[name]:8.1f} {med:7.2f}   "
                  f"{c['phone'] / gib:5.2f} / {c['adb server'] / gib:5.2f} / "
                  f"{c['client'] / gib:5.2f}")
        print(f"ratio adbutils/adb push: "
              f"{medians['push  adbutils  '] / medians['push  adb binary']:.2f}   "
              f"pull: {medians['pull  adbutils  '] / medians['pull  adb binary']:.2f}")
        print("sha256 verified after every pull")
    return 0


if __name__ == "__main__":
    sys.exit(main())
