"""Run benchmark: qfp32 -> PNG conversion, and harness overhead per step.

  convert:  harness.run.images.qfp32_to_png on a 1024x1024 VAE output  vs  the seed's minimal
            numpy + Pillow snippet, same file, alternating, median of ``--repeat``.
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
        src = tmp / "vae.qfp32"
        rng = np.random.default_rng(1)
        rng.uniform(-1.2, 1.2, (1, 3, 1024, 1024)).astype("<f4").tofile(src)
        ours, base = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            qfp32_to_png(src, (1, 3, 1024, 1024), tmp / "a.png")
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            seed_snippet(src, tmp / "b.png")
            base.append(time.perf_counter() - start)
        same = (np.asarray(Image.open(tmp / "a.png")) == np.asarray(Image.open(tmp / "b.png")))
        print(f"convert 1024x1024: harness {med(ours) * 1000:.1f} ms   seed snippet "
              f"{med(base) * 1000:.1f} ms   ratio {med(ours) / med(base):.2f}   "
              f"identical pixels: {bool(same.all())}")

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
