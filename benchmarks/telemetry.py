"""Telemetry benchmark: what the device-side sampler costs a step.

  cpu:   the sampler's own CPU time on the phone (utime + stime of its process, read from
         /proc/<pid>/stat just before it is stopped) over the step's wall time: its share
         of one core;
  step:  a simulated SD1.5 step (20 steps, ~3 s wall) through BackgroundRun with the
         sampler beside it  vs  the same step without, alternating, median of ``--repeat``.

The goal is under 1 % of a step's time.

    python benchmarks/telemetry.py [--repeat 5] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.handrun

from harness.device.background import BackgroundRun
from harness.device.device import AdbEndpoint, Device
from harness.run.telemetry import Sampler, TelemetryOptions
from harness.sim.assets import build_demo_assets
from harness.sim.farm import private_farm
from tests.handrun import push_tree
from tests.simfarm import adbutils_client

STEP_SCALE = "0.15"  # the binary's own time scale: SD1.5 20 steps ~ 2.8 s wall
COMMAND = (f"HARNESS_SIM_TIME_SCALE={STEP_SCALE} CLML_NO_REUSE_TNN=1 "
           "/data/local/tmp/sd15_pipeline_run /data/local/tmp/sd15_clml/sd15_clml_weights 20")
CLK_TCK = os.sysconf("SC_CLK_TCK")  # the virtual phone's kernel is the host's


def cpu_seconds(device: Device, pid: int) -> float:
    stat = device.run(f"cat /proc/{pid}/stat", timeout=30).out
    fields = stat.rsplit(")", 1)[-1].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def one_step(device: Device, options: TelemetryOptions | None) -> tuple[float, float, int]:
    """(step wall s, sampler CPU s, samples) of one step."""
    start = time.perf_counter()
    run = BackgroundRun.start(device, COMMAND, name="telemetry-bench")
    sampler = Sampler.start(device, run.pid, options) if options else None
    outcome = run.attach(on_output=lambda _s, _l: None)
    wall = time.perf_counter() - start
    assert outcome.exit_code == 0, outcome.stderr
    cpu, samples = 0.0, 0
    if sampler is not None:
        pid = sampler.parser.sampler_pid
        if pid is not None and sampler.stream.is_alive():
            cpu = cpu_seconds(device, pid)
        samples = len(sampler.stop().samples)
    run.cleanup()
    return wall, cpu, samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    options = TelemetryOptions(interval_s=args.interval)
    med = statistics.median
    with private_farm(time_scale=0.005) as (_farm, state, tmp):
        phone = state.phones[0]
        device = Device(phone.adb_serial, AdbEndpoint("127.0.0.1", state.adb_port))
        push_tree(adbutils_client("127.0.0.1", state.adb_port, 60).device(phone.adb_serial),
                  build_demo_assets(tmp / "assets"), "/data/local/tmp")
        with_s, without_s, shares, counts = [], [], [], []
        one_step(device, None)  # warm up: caches, the phone's first binary start
        for _ in range(args.repeat):
            wall, cpu, samples = one_step(device, options)
            with_s.append(wall)
            shares.append(cpu / wall)
            counts.append(samples)
            without_s.append(one_step(device, None)[0])
    print(f"sampler every {args.interval:g} s: CPU {med(shares) * 100:.2f} % of one core "
          f"(min {min(shares) * 100:.2f} %, max {max(shares) * 100:.2f} %), "
          f"{med(counts):.0f} samples per step")
    change = med(with_s) / med(without_s) - 1
    print(f"step (simulated SD1.5, 20 steps): with sampler {med(with_s) * 1000:.0f} ms   "
          f"without {med(without_s) * 1000:.0f} ms   change {change * 100:+.2f} %   "
          f"goal < 1 %: {'met' if change < 0.01 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
