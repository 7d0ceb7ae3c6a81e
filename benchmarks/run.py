"""Run benchmark: qfp32 -> PNG conversion, and harness overhead per step.

  convert:  harness.run.images.qfp32_to_png on a 1024x1024 VAE output  vs  the seed's minimal
            numpy + Pillow snippet (default PNG settings), same file, alternating, median of
            ``--repeat`` with min-max, CPU and file size; two inputs: uniform noise (the
            worst case for zlib) and a smooth picture with grain.
  step:     a simulated SD1.5 step through BackgroundRun (start + attach + output lines)  vs
            a bare `adb shell` of the same command, on one virtual phone.

    python benchmarks/run.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from harness.device.adb import adb_binary
from harness.device.background import BackgroundRun
from harness.device.device import AdbEndpoint, Device
from harness.run.images import qfp32_to_png
from harness.sim.assets import build_demo_assets
from harness.sim.farm import private_farm
from tests.handrun import push_tree
from tests.simfarm import adbutils_client


def seed_snippet(src: Path, dest: Path) -> None:
    """The seed's step C, verbatim in spirit."""
    arr = np.fromfile(src, dtype=np.float32).reshape(1, 3, 1024, 1024)
    img = arr[0] / 2.0 + 0.5
    img = np.clip(img, 0.0, 1.0)
    img = (img.transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
    Image.fromarray(img).save(dest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    med = statistics.median
    with tempfile.TemporaryDirectory(prefix="harness-runbench-") as tmp_name:
        tmp = Path(tmp_name)
        rng = np.random.default_rng(1)
        yy, xx = np.mgrid[0:1024, 0:1024] / 1024.0
        picture = np.stack([np.sin(xx * 6), np.cos(yy * 5), xx * yy * 2 - 1])[None]
        inputs = {"noise": rng.uniform(-1.2, 1.2, (1, 3, 1024, 1024)),  # incompressible
                  "picture": picture + rng.normal(0, 0.01, picture.shape)}  # smooth + grain
        for name, values in inputs.items():
            src = tmp / f"{name}.qfp32"
            values.astype("<f4").tofile(src)
            ours, base, ours_cpu, base_cpu = [], [], [], []
            for i in range(args.repeat):
                sides = [(lambda s=src: qfp32_to_png(s, (1, 3, 1024, 1024), tmp / "a.png"), ours,
                          ours_cpu), (lambda s=src: seed_snippet(s, tmp / "b.png"), base,
                                      base_cpu)]
                for fn, wall, cpu in sides if i % 2 == 0 else sides[::-1]:
                    start, cpu_start = time.perf_counter(), time.process_time()
                    fn()
                    wall.append(time.perf_counter() - start)
                    cpu.append(time.process_time() - cpu_start)
            with Image.open(tmp / "a.png") as a, Image.open(tmp / "b.png") as b:
                same = bool((np.asarray(a) == np.asarray(b)).all())
            print(f"convert 1024x1024 {name}: harness {med(ours) * 1000:.1f} ms "
                  f"({min(ours) * 1000:.1f}-{max(ours) * 1000:.1f}), CPU "
                  f"{med(ours_cpu) * 1000:.1f} ms, {(tmp / 'a.png').stat().st_size / 1e6:.2f} MB"
                  f"   seed snippet {med(base) * 1000:.1f} ms ({min(base) * 1000:.1f}-"
                  f"{max(base) * 1000:.1f}), CPU {med(base_cpu) * 1000:.1f} ms, "
                  f"{(tmp / 'b.png').stat().st_size / 1e6:.2f} MB   ratio "
                  f"{med(ours) / med(base):.2f}   identical pixels: {same}")

    with private_farm(time_scale=0.005) as (farm, state, tmp):
        phone = state.phones[0]
        device = Device(phone.adb_serial, AdbEndpoint("127.0.0.1", state.adb_port))
        push_tree(adbutils_client("127.0.0.1", state.adb_port, 60).device(phone.adb_serial),
                  build_demo_assets(tmp / "assets"), "/data/local/tmp")
        cmd = ("CLML_NO_REUSE_TNN=1 /data/local/tmp/sd15_pipeline_run "
               "/data/local/tmp/sd15_clml/sd15_clml_weights 20")
        adb = [adb_binary(), "-P", str(state.adb_port), "-s", phone.adb_serial]
        env = farm.adb_server(state).env
        harness_s, bare_s = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            run = BackgroundRun.start(device, cmd, name="bench")
            outcome = run.attach(on_output=lambda _s, _l: None)
            harness_s.append(time.perf_counter() - start)
            assert outcome.exit_code == 0, outcome.stderr
            run.cleanup()
            start = time.perf_counter()
            subprocess.run([*adb, "shell", cmd], env=env, check=True, capture_output=True)
            bare_s.append(time.perf_counter() - start)
    print(f"step (simulated SD1.5, 20 steps): harness background run "
          f"{med(harness_s) * 1000:.0f} ms   bare adb shell {med(bare_s) * 1000:.0f} ms   "
          f"ratio {med(harness_s) / med(bare_s):.2f}   overhead "
          f"{(med(harness_s) - med(bare_s)) * 1000:+.0f} ms per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
