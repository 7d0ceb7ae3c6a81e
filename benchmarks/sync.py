"""Asset sync benchmark: harness vs the ``adb push`` binary on the same tree, same run.

Starts its own one-phone virtual farm (temporary HARNESS_HOME, private adb port), builds a
tree of ``--files`` files totalling ``--size-mib`` MiB (a few large weight files, many small
ones), then measures, alternating the two tools, median of ``--repeat``:

  (a) cold push:        harness Syncer.sync  vs  adb push DIR
  (b) no-op resync:     harness Syncer.sync  vs  adb push --sync DIR   (+ adb round trips,
                        files pushed: 0 when sync sees what adbd made of the modes)
  (c) one file changed: harness Syncer.sync  vs  adb push --sync DIR

Harness is timed in-process through its library call; the whole ``harness push`` command
(with Python start-up) is reported separately for (b).

    python benchmarks/sync.py [--files 2000] [--size-mib 2048] [--repeat 3]
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

import numpy as np

from harness.assets.hashcache import HashCache
from harness.assets.sets import AssetEntry, AssetSet
from harness.assets.sync import Syncer
from harness.device.adb import adb_binary
from harness.device.device import AdbEndpoint, Device
from harness.sim.farm import Farm, private_farm

BIG_FILES = 8  # weight-sized files holding half of the bytes


def build_tree(root: Path, files: int, size_mib: int) -> int:
    rng = np.random.default_rng(7)
    total = size_mib << 20
    big_each = (total // 2) // BIG_FILES
    small_count = files - BIG_FILES
    small_each = (total - big_each * BIG_FILES) // small_count
    written = 0
    for i in range(files):
        size = big_each if i < BIG_FILES else small_each + (i % 7) * 13
        path = root / f"block{i % 16:02d}" / f"tensor{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        written += size
    return written


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with private_farm(time_scale=0.01) as (farm, state, tmp):
        return run(args, tmp, farm, state)


def run(args: argparse.Namespace, tmp: Path, farm: Farm, state: object) -> int:
    from harness.sim.farm import FarmState

    assert isinstance(state, FarmState)
    phone = state.phones[0]
    server = farm.adb_server(state)
    device = Device(phone.adb_serial, AdbEndpoint("127.0.0.1", state.adb_port))
    src = tmp / "tree"
    size = build_tree(src, args.files, args.size_mib)
    adb = [adb_binary(), "-P", str(state.adb_port), "-s", phone.adb_serial]
    h_dest, a_dest = "/data/local/tmp/bench_h/tree", "/data/local/tmp/bench_a"
    aset = AssetSet("bench", [AssetEntry(src, h_dest, None)])
    cache = HashCache(tmp / "hashes.sqlite")
    t_hash = timed(lambda: cache.hash_many(sorted(str(p) for p in src.rglob("*") if p.is_file())))

    def adb_push(*flags: str) -> None:
        subprocess.run([*adb, "push", *flags, str(src), a_dest], env=server.env, check=True,
                       capture_output=True)

    def wipe() -> None:
        device.run("rm -rf /data/local/tmp/bench_h /data/local/tmp/bench_a "
                   "/data/local/tmp/.harness/manifests/bench.json", check=True, timeout=300)

    cold_h, cold_a = [], []
    for _ in range(args.repeat):
        wipe()
        cold_h.append(timed(lambda: Syncer(device, cache).sync([aset])))
        wipe()
        cold_a.append(timed(adb_push))
    device.run("true")
    Syncer(device, cache).sync([aset])
    adb_push()
    noop_h, noop_a, trips, noop_pushed = [], [], [], []
    for _ in range(args.repeat):
        syncer = Syncer(device, cache)
        start = time.perf_counter()
        noop_pushed.append(len(syncer.sync([aset]).pushed))
        noop_h.append(time.perf_counter() - start)
        trips.append(syncer.round_trips)
        noop_a.append(timed(lambda: adb_push("--sync")))
    env = {**os.environ, "HARNESS_HOME": os.environ["HARNESS_HOME"]}
    farm_file = tmp / "farm.yaml"
    farm_file.write_text(f"servers: [{{name: b, port: {state.adb_port}}}]\nsim: false\n")
    cli = [sys.executable, "-m", "harness.cli", "push", "--help"]
    t_startup = statistics.median(timed(lambda: subprocess.run(cli, env=env, check=True,
                                                               capture_output=True))
                                  for _ in range(3))
    one_h, one_a, one_pushed = [], [], []
    victim = next(p for p in sorted(src.rglob("*.bin")) if p.stat().st_size < (1 << 20))
    for i in range(args.repeat):
        victim.write_bytes(os.urandom(victim.stat().st_size))
        os.utime(victim, (time.time() + i + 1, time.time() + i + 1))
        start = time.perf_counter()
        one_pushed.append(len(Syncer(device, cache).sync([aset]).pushed))
        one_h.append(time.perf_counter() - start)
        one_a.append(timed(lambda: adb_push("--sync")))
    med = statistics.median
    mb = size / 1e6
    print(f"sync benchmark: {args.files} files, {size / (1 << 30):.2f} GiB, median of "
          f"{args.repeat}, virtual phone on loopback; local hashing (cold cache) "
          f"{t_hash:.2f}s")
    print(f"{'case':28} {'harness':>10} {'adb':>10}  ratio")
    print(f"{'(a) cold push  s':28} {med(cold_h):10.2f} {med(cold_a):10.2f}  "
          f"throughput harness/adb = {med(cold_a) / med(cold_h):.2f} "
          f"({mb / med(cold_h):.0f} vs {mb / med(cold_a):.0f} MB/s)")
    print(f"{'(b) no-op resync  s':28} {med(noop_h):10.3f} {med(noop_a):10.3f}  "
          f"adb/harness = {med(noop_a) / med(noop_h):.2f}x; harness round trips: "
          f"{max(trips)}; files pushed: {max(noop_pushed)} of {args.files}")
    print(f"{'    python start-up of harness':28} {t_startup:10.3f}  (add to (b) for the "
          f"whole `harness push` command: {med(noop_h) + t_startup:.3f}s)")
    print(f"{'(c) one file changed  s':28} {med(one_h):10.3f} {med(one_a):10.3f}  "
          f"adb/harness = {med(one_a) / med(one_h):.2f}x "
          f"(file {victim.stat().st_size / 1e3:.0f} kB); files pushed: {max(one_pushed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
