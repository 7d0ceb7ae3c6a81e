"""``harness bench`` scaling: one phone against four phones with the same matrix per phone.

Starts its own private four-phone virtual farm (temporary HARNESS_HOME and lease folder,
private adb port, never 5037) and runs the bench through its library call
(:class:`harness.bench.engine.Bench`), the two sides alternating, ``--rounds`` times:

  scale   bench of sd15-512 x (warm-up + --repeat) on 4 phones  vs  the same on 1 phone
          (ratio of wall times; the goal is <= 1.15: phones run in parallel, so four
          phones should take hardly longer than one)
  bare    the same number of runs of the step as bare ``adb shell`` processes, 4 phones
          vs 1: what this host allows without harness
  cpu     harness's own CPU time (this process, every thread) per measured run of the
          4-phone bench: what the host spends per run besides waiting for phones
  host    the whole host's busy share while each side ran (``/proc/stat``: harness, the
          adb server, the virtual phones' daemons and binaries), of all its CPUs

The default time scale is 1: the virtual phones take as long as a real Snapdragon 8 Gen 3
does (SD1.5 512, 20 steps, about 20 s a run), which is what a nightly waits for; the
command then takes about 7 minutes. A smaller ``--time-scale`` compresses the phones' time
but not the host's: every virtual phone is a Python daemon on this host, serving adb and
rewriting its sysfs files 4 times a second, and its binary's CPU is this host's too, so on
a machine with fewer cores than phones the ratio then measures the host (the ``bare`` and
``host`` lines show by how much). On a farm each phone computes on its own SoC.

    python benchmarks/bench.py [--rounds N] [--repeat N] [--time-scale S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from harness.bench.config import BenchConfig, BenchRecipe, Thresholds
from harness.bench.engine import Bench, BenchRequest
from harness.device.adb import adb_binary
from harness.sim.farm import FarmState, private_farm

PHONES = 4
T = TypeVar("T")
SD15_STEP = ("CLML_NO_REUSE_TNN=1 /data/local/tmp/sd15_pipeline_run "
             "/data/local/tmp/sd15_clml/sd15_clml_weights 20")


def host_busy() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot (``/proc/stat``'s first line)."""
    with Path("/proc/stat").open() as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def busy_share(fn: Callable[[], T], shares: list[float]) -> T:
    """``fn()``; append the host's busy share of all CPUs while it ran to ``shares``."""
    busy0, total0 = host_busy()
    result = fn()
    busy1, total1 = host_busy()
    shares.append((busy1 - busy0) / max(total1 - total0, 1))
    return result


def bare(state: FarmState, env: dict[str, str], serials: Sequence[str], runs: int) -> float:
    """Wall s of ``runs`` bare `adb shell` runs of the step per phone, phones at once."""
    def phone(serial: str) -> None:
        for _ in range(runs):
            subprocess.run([adb_binary(), "-P", str(state.adb_port), "-s", serial, "shell",
                            SD15_STEP], env=env, capture_output=True, check=True)

    threads = [threading.Thread(target=phone, args=(s,)) for s in serials]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def one_bench(selector: str, repeat: int, farm_file: Path, db: Path,
              logs: Path) -> tuple[float, float, int]:
    """(wall s, this process's CPU s, measured runs) of one bench."""
    config = BenchConfig(recipes=(BenchRecipe("sd15-512"),), device=selector, repeat=repeat,
                         warmup=1, budget_min=0.0,
                         thresholds=Thresholds(battery_c=90.0, cpu_c=110.0, cool_wait_s=0.0))
    request = BenchRequest(config, farm_path=farm_file, db_path=db, logs_dir=logs)
    wall, cpu = time.perf_counter(), time.process_time()
    report = Bench(request).run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    measured = sum(1 for r in report.runs if not r["warmup"] and r["status"] == "ok")
    assert report.failed_runs == 0, report.runs
    return wall, cpu, measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternations (default 2)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="measured runs per phone (default 2)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="wall s per simulated s (default 1: a real phone's speed, "
                             "SD1.5 ~20 s a run)")
    args = parser.parse_args()
    with private_farm(("sm8650-16g",) * PHONES, time_scale=args.time_scale,
                      prefix="harness-bench-") as (farm, state, tmp):
        env = {**os.environ, **farm.adb_server(state).env}
        os.environ["HARNESS_LEASE_DIR"] = str(tmp / "leases")
        farm_file = tmp / "farm.yaml"
        tags = ", ".join(f"'{p.adb_serial}': {{tags: [bench]}}" for p in state.phones)
        farm_file.write_text(f"servers: [{{name: virtual, port: {state.adb_port}}}]\n"
                             f"sim: false\ndevices: {{{tags}}}\n")
        one_phone = state.phones[0].adb_serial
        db, logs = tmp / "results.sqlite", tmp / "logs"
        one_bench("tag:bench", 1, farm_file, db, logs)  # sync every phone once, untimed
        singles: list[float] = []
        fours: list[float] = []
        bare1: list[float] = []
        bare4: list[float] = []
        cpu_per_run: list[float] = []
        busy: dict[str, list[float]] = {"one": [], "four": [], "bare1": [], "bare4": []}
        all_phones = [p.adb_serial for p in state.phones]
        for i in range(args.rounds):
            order = [("one", one_phone), ("four", "tag:bench")]
            for name, selector in order if i % 2 == 0 else order[::-1]:
                wall, cpu, runs = busy_share(
                    lambda s=selector: one_bench(s, args.repeat, farm_file, db, logs),
                    busy[name])
                if name == "one":
                    singles.append(wall)
                else:
                    fours.append(wall)
                    cpu_per_run.append(cpu / runs)
            bare1.append(busy_share(lambda: bare(state, env, [one_phone], args.repeat + 1),
                                    busy["bare1"]))
            bare4.append(busy_share(lambda: bare(state, env, all_phones, args.repeat + 1),
                                    busy["bare4"]))
        ratio = statistics.median(fours) / statistics.median(singles)
        host = statistics.median(bare4) / statistics.median(bare1)
        print(f"matrix per phone: sd15-512 x (1 warm-up + {args.repeat} repeats), time scale "
              f"{args.time_scale:g}, {args.rounds} rounds, load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"1 phone : {statistics.median(singles):.2f} s "
              f"({min(singles):.2f}-{max(singles):.2f})")
        print(f"4 phones: {statistics.median(fours):.2f} s "
              f"({min(fours):.2f}-{max(fours):.2f})")
        print(f"scale   4 phones / 1 phone = {ratio:.2f}  (goal <= 1.15)")
        print(f"bare    4 phones / 1 phone = {host:.2f}  (bare adb shell of the step: "
              f"{statistics.median(bare1):.2f} s vs {statistics.median(bare4):.2f} s)")
        print(f"harness's own part: scale / bare = {ratio / host:.2f}")
        print(f"cpu     harness CPU per measured run (4 phones) = "
              f"{1000 * statistics.median(cpu_per_run):.0f} ms "
              f"({1000 * min(cpu_per_run):.0f}-{1000 * max(cpu_per_run):.0f})")
        share = {k: f"{100 * statistics.median(v):.0f} %" for k, v in busy.items()}
        print(f"host    busy share of its {os.cpu_count()} CPUs: bench {share['one']} (1 phone) "
              f"vs {share['four']} (4 phones); bare {share['bare1']} vs {share['bare4']}")


if __name__ == "__main__":
    main()
