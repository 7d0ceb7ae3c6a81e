"""``harness bench`` scaling: one phone against four phones with the same matrix per phone.

Starts its own private four-phone virtual farm (temporary HARNESS_HOME and lease folder,
private adb port, never 5037) and runs the bench through its library call
(:class:`harness.bench.engine.Bench`), the two sides alternating, ``--rounds`` times:

  scale   bench of sd15-512 x (warm-up + --repeat) on 4 phones  vs  the same on 1 phone
          (ratio of wall times; the goal is <= 1.15: phones run in parallel, so four
          phones should take hardly longer than one)
  cpu     harness's own CPU time (this process, every thread) per measured run of the
          4-phone bench: what the host spends per run besides waiting for phones

The virtual phones' binaries run in their own processes (they are not harness's CPU), and
on a machine with fewer cores than phones they compete with each other for the CPU: the
ratio then also measures the host, so the load average is printed with it.

    python benchmarks/bench.py [--rounds N] [--repeat N] [--time-scale S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from harness.bench.config import BenchConfig, BenchRecipe, Thresholds
from harness.bench.engine import Bench, BenchRequest
from harness.device.adb import adb_binary
from harness.sim.farm import FarmState, private_farm

PHONES = 4
SD15_STEP = ("CLML_NO_REUSE_TNN=1 /data/local/tmp/sd15_pipeline_run "
             "/data/local/tmp/sd15_clml/sd15_clml_weights 20")


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
    parser.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per phone")
    parser.add_argument("--time-scale", type=float, default=0.02,
                        help="wall s per simulated s (default 0.02: SD1.5 20 steps ~0.2 s)")
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
        all_phones = [p.adb_serial for p in state.phones]
        for i in range(args.rounds):
            order = [("one", one_phone), ("four", "tag:bench")]
            for name, selector in order if i % 2 == 0 else order[::-1]:
                wall, cpu, runs = one_bench(selector, args.repeat, farm_file, db, logs)
                if name == "one":
                    singles.append(wall)
                else:
                    fours.append(wall)
                    cpu_per_run.append(cpu / runs)
            bare1.append(bare(state, env, [one_phone], args.repeat + 1))
            bare4.append(bare(state, env, all_phones, args.repeat + 1))
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


if __name__ == "__main__":
    main()
