"""Telemetry end to end: the sampler on a virtual phone follows the simulated binaries'
footprint and power, lands in the store and samples.csv, and leaves nothing running."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.device.device import AdbEndpoint, Device
from harness.results.samples import run_samples
from harness.results.store import Store
from harness.sim import speed
from harness.sim.state import USB_CHARGE_W
from tests.helpers import harness
from tests.simfarm import SimFarm, phone_runs

pytestmark = pytest.mark.e2e

SCALE = 0.03  # the binaries' own time scale: a UNet step of ~4 s, a few dozen samples
# The sign test's SD1.5 loop: ~1 s of load, so the phone's battery files (rewritten 4 times a
# second) show the draw in several samples even on a busy host.
SIGN_SCALE = 0.1
SAMPLER_MARK = "harness[-]sampler"  # [-]: grep's own command line does not match


def samplers(device: Device) -> list[str]:
    """The samplers running on this phone. The virtual phones share the host's PID
    namespace, so /proc also lists other farms' samplers (another test session's): only
    processes in this phone's mount namespace count, as on a real phone all of /proc is it."""
    found = device.run(
        "me=$(readlink /proc/self/ns/mnt); "
        f"for f in $(grep -l '{SAMPLER_MARK}' /proc/[0-9]*/cmdline 2>/dev/null); do "
        'd=${f%/cmdline}; [ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$me" ] && echo "$f"; '
        "done; true", timeout=30).out.split()
    return [p for p in found if "/self/" not in p]


def figure(stdout: str, key: str) -> float:
    match = re.search(rf"{re.escape(key)}=([0-9.eE+-]+)", stdout)
    assert match, key
    return float(match.group(1))


def test_sdxl_telemetry_follows_the_footprint_and_power(tmp_path: Path, sim_farm: SimFarm,
                                                        farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    device = Device(serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    db = tmp_path / "results.sqlite"
    result = harness("run", "sdxl-1024", "-d", serial, "--farm", str(farm_file), "--db", str(db),
                     "--json", "--telemetry-interval", "0.05",
                     "--set", f"unet.env.HARNESS_SIM_TIME_SCALE={SCALE}",
                     "--set", f"vae.env.HARNESS_SIM_TIME_SCALE={SCALE}", cwd=tmp_path)
    summary = json.loads(result.stdout)
    assert result.returncode == 0, summary["diagnosis"]
    folder = tmp_path / summary["run_dir"]
    with Store.open(db) as store:
        detail = store.get_run(summary["run_id"])
        metrics = {(m.step, m.name): m.value for m in detail.metrics}
        rows = run_samples(store, summary["run_id"], "unet")
    # The UNet's resident set, plus a few MB of the wrapper shell around it.
    assert speed.SDXL_UNET_RSS_KB <= metrics[("unet", "peak_rss_kb")] \
        <= speed.SDXL_UNET_RSS_KB + 20_000
    assert speed.SDXL_VAE_RSS_KB <= metrics[("vae", "peak_rss_kb")] \
        <= speed.SDXL_VAE_RSS_KB + 20_000
    idle = next(r.value for r in rows if r.name == "mem_available_kb")
    assert metrics[("unet", "min_mem_available_kb")] < idle - 9_000_000
    # Energy: the binary's own phase times (simulated s x its time scale = wall s) at the
    # cost model's power, minus what the USB port feeds (the battery sees the net).
    out = (folder / "00-unet.stdout").read_text()
    phases = [(figure(out, "init_s"), speed.INIT_POWER_W),
              (figure(out, "CLIP ms") / 1000 if "CLIP ms" in out else figure(out, "ms") / 1000,
               speed.CLIP_CPU_POWER_W),
              (figure(out, "loop_s"), speed.UNET_POWER_W)]
    nominal = sum(s * SCALE * (w - USB_CHARGE_W) for s, w in phases)
    # On a busy host the binary's sleeps overrun, so its phases last longer in wall time than
    # their simulated seconds x its time scale, and the phone shows the draw for that long:
    # the energy is the model's power levels over the time the binary drew them.
    drawing = [r.t for r in rows if r.name == "power_w" and r.value > 0]
    stretch = max((drawing[-1] - drawing[0]) / sum(s * SCALE for s, _ in phases), 1.0)
    assert metrics[("unet", "energy_j")] == pytest.approx(nominal * stretch, rel=0.25)
    assert metrics[("unet", "energy_per_image_j")] == metrics[("unet", "energy_j")]
    assert 0 < metrics[("unet", "mean_power_w")] < speed.UNET_POWER_W
    # Discharging under load, or Full when earlier tests charged the phone up: both count.
    assert 0.0 <= metrics[("unet", "on_charger")] <= 1.0
    names = {r.name for r in rows}
    assert {"rss_kb", "hwm_kb", "swap_kb", "psi_some_avg10", "psi_full_avg10", "current_ua",
            "voltage_uv", "power_w", "cpu0_cur_khz", "cpu0_max_khz", "gpu_busy_pct",
            "gpu_clk_mhz", "temp_cpu_1_0_0_c"} <= names
    assert max(r.value for r in rows if r.name == "gpu_busy_pct") > 80  # the UNet loop
    with (folder / "samples.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert {row["step"] for row in table} == {"unet", "vae"}
    assert max(float(row["rss_kb"] or 0) for row in table) \
        == metrics[("unet", "peak_rss_kb")]
    assert samplers(device) == []


def test_the_farm_files_current_sign_decides(tmp_path: Path, sim_farm: SimFarm) -> None:
    # sm8650-16g's gauge reads discharge negative; a farm entry that says positive (as for a
    # phone that never leaves its charger, where nothing can tell) is taken at its word, so
    # the draw under load comes out negative here: the setting, not the samples, decided.
    serial = sim_farm.phone("sm8650-16g").adb_serial
    db = tmp_path / "results.sqlite"
    powers = {}
    for sign in ("auto", "discharge-positive"):
        farm = tmp_path / f"farm-{sign}.yaml"
        farm.write_text(f"servers: [{{name: virtual, port: {sim_farm.state.adb_port}}}]\n"
                        "sim: false\nthermal: {battery_c: 90, cpu_c: 110}\n"
                        f"devices: {{'{serial}': {{current_sign: {sign}}}}}\n")
        result = harness("run", "sd15-512", "-d", serial, "--farm", str(farm), "--db", str(db),
                         "--json", "--logs-dir", str(tmp_path / sign), "--telemetry-interval",
                         "0.05", "--set", f"pipeline.env.HARNESS_SIM_TIME_SCALE={SIGN_SCALE}",
                         cwd=tmp_path)
        summary = json.loads(result.stdout)
        assert result.returncode == 0, summary["diagnosis"]
        note = (tmp_path / summary["run_dir"] / "00-pipeline.telemetry.log").read_text()
        with Store.open(db) as store:
            power = [r.value for r in run_samples(store, summary["run_id"], "pipeline",
                                                  "power_w")]
        # the strongest draw is the UNet loop's (9 W against the USB port's 2.5 W): a
        # discharge whatever else the run's few samples caught (a mean can be near 0)
        powers[sign] = max(power, key=abs)
        if sign == "auto":  # learnt from Discharging samples, or the kernel ABI's assumed
            assert "(set)" not in note and "negative" in note, note
        else:
            assert "sign discharge-positive (set)" in note, note
    assert powers["auto"] > 0 > powers["discharge-positive"]


def test_interrupted_step_keeps_its_samples_and_leaves_nothing(
        tmp_path: Path, sim_farm: SimFarm, farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-24g").adb_serial
    device = Device(serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "sd15-512", "-d", serial, "--farm",
         str(farm_file), "--db", str(db), "--set", "steps=400",
         "--set", "pipeline.env.HARNESS_SIM_TIME_SCALE=0.05"], cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while "step 3/" not in (line := proc.stderr.readline() if proc.stderr else ""):
            assert line or proc.poll() is None, "run ended early"
            assert time.monotonic() < deadline
        assert samplers(device), "the sampler runs beside the step"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert phone_runs(device, "sd15_pipeline_run") == []
    assert samplers(device) == []
    with Store.open(db) as store:
        run = store.list_runs()[0]
        assert run.status == "interrupted"
        rss = [r.value for r in run_samples(store, run.id, "pipeline", "rss_kb")]
    assert max(rss) >= speed.SD15_INIT_RSS_KB


def test_sampler_comes_back_after_a_dropped_connection(sim_farm: SimFarm) -> None:
    from harness.device.background import BackgroundRun
    from harness.run.telemetry import Sampler, TelemetryOptions
    from tests.helpers import wait_for

    record = sim_farm.phone("sm8650-16g")
    device = Device(record.adb_serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    run = BackgroundRun.start(device, ["sh", "-c", "sleep 3"], name="telemetry-drop")
    sampler = Sampler.start(device, run.pid, TelemetryOptions(interval_s=0.05))
    assert sampler is not None
    wait_for(lambda: len(sampler.parser.samples) >= 3)
    before = sampler.parser.samples[-1].uptime_s
    sim_farm.farm.drop_connections(record.serial)
    assert run.attach(timeout=60).exit_code == 0
    seen = sampler.stop()
    run.cleanup()
    assert seen.error is not None and "restarted" in seen.error
    assert seen.samples[-1].t > before - sampler.parser.samples[0].uptime_s + 1.0
    assert samplers(device) == []
