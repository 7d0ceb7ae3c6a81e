"""The seed's flows and failure modes, by hand through adbutils, on virtual phones.

No recipes here: the commands are seed-facts.md's, sent with adbutils to phones the real adb
server adopted. They prove the virtual phone behaves as the seed says before harness builds
on it.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import adbutils
import numpy as np
import pytest

from harness.clip import CLIP_END_TOKEN
from harness.sim.assets import build_demo_assets
from tests import handrun
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e

TMP = "/data/local/tmp"


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_assets(tmp_path_factory.mktemp("demo") / "assets")


def pushed(sim_farm: SimFarm, profile: str, assets: Path) -> adbutils.AdbDevice:
    device = sim_farm.device(sim_farm.phone(profile))
    handrun.push_tree(device, assets, TMP)
    device.sync.push(handrun.token_rows(handrun.A_PHOTO_OF_A_CAT, CLIP_END_TOKEN), f"{TMP}/clip_l_ids.i32")
    device.sync.push(handrun.token_rows(handrun.A_PHOTO_OF_A_CAT, 0), f"{TMP}/clip_g_ids.i32")
    return device


def sh(device: adbutils.AdbDevice, env: dict[str, str], argv: list[str],
       cwd: str | None = None) -> adbutils.ShellReturn:
    return device.shell2(handrun.shell_line(env, argv, cwd), timeout=120, v2=True)


def test_clean_sd15_run(sim_farm: SimFarm, assets: Path, tmp_path: Path) -> None:
    device = sim_farm.device(sim_farm.phone("sm8475-8g"))
    result = handrun.sd15(device, assets, tmp_path)
    step = result.steps[-1]
    assert step.exit_code == 0, step.output
    assert "[Perf] steps=20 total_s=" in step.output and "s/step=" in step.output
    assert (tmp_path / "clml_stable_diffusion_output.qfp32").stat().st_size == 3 * 512 * 512 * 4
    assert result.stats is not None and result.stats.nan_count == 0


def test_clean_split_sdxl_run(sim_farm: SimFarm, assets: Path, tmp_path: Path) -> None:
    device = sim_farm.device(sim_farm.phone("sm8650-16g"))
    result = handrun.sdxl_split(device, assets, tmp_path)
    unet, vae = result.steps
    assert unet.exit_code == 0 and vae.exit_code == 0, (unet.output, vae.output)
    assert "[Perf] CLIP ms=" in unet.output and "[Perf] UNet loop_s=" in unet.output
    assert "[Perf] iters=1 warmup=0 s/it=" in vae.output
    assert (tmp_path / "sdxl_vae_out.qfp32").stat().st_size == 3 * 1024 * 1024 * 4
    latent = device.shell2(f"stat -c %s {TMP}/sdxl_latent_clipcpu_early2_x0.qfp32").output
    assert int(latent) == 4 * 128 * 128 * 4


def _sdxl_unet(device: adbutils.AdbDevice, **env_changes: str | None) -> adbutils.ShellReturn:
    env = dict(handrun.SDXL_UNET_ENV)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return sh(device, env, handrun.SDXL_UNET_ARGV)


def _image(device: adbutils.AdbDevice, path: str) -> np.ndarray:
    raw = device.sync.read_bytes(path)
    return np.frombuffer(raw, dtype="<f4").reshape(1, 3, 1024, 1024)


def test_failure_1_tnn_reuse_drift_paints_colour_blocks(sim_farm: SimFarm, assets: Path) -> None:
    from harness.run.blocks import find_image_blocks

    device = pushed(sim_farm, "sm8650-16g", assets)
    assert _sdxl_unet(device).returncode == 0
    clean = sh(device, handrun.SDXL_VAE_ENV, handrun.SDXL_VAE_ARGV, TMP)
    assert clean.returncode == 0
    assert not find_image_blocks(_image(device, handrun.SDXL_OUTPUT)).boxes
    drift_env = {**handrun.SDXL_VAE_ENV, "CLML_NO_REUSE_TNN": "0"}
    drift = sh(device, drift_env, handrun.SDXL_VAE_ARGV, TMP)
    assert drift.returncode == 0, "the real binary does not notice its own drift"
    assert find_image_blocks(_image(device, handrun.SDXL_OUTPUT)).found


def test_failure_2_k0_without_x0_gives_end_colour_blocks(sim_farm: SimFarm, assets: Path) -> None:
    from harness.run.blocks import find_image_blocks

    device = pushed(sim_farm, "sm8650-16g", assets)
    run = _sdxl_unet(device, SDXL_EARLY_DECODE_K="0", SDXL_EARLY_DECODE_X0=None)
    assert run.returncode == 0
    assert sh(device, handrun.SDXL_VAE_ENV, handrun.SDXL_VAE_ARGV, TMP).returncode == 0
    assert find_image_blocks(_image(device, handrun.SDXL_OUTPUT)).found
    fixed = _sdxl_unet(device, SDXL_EARLY_DECODE_K="0", SDXL_EARLY_DECODE_X0=None,
                       SDXL_EXPORT_X0="1")
    assert fixed.returncode == 0
    assert sh(device, handrun.SDXL_VAE_ENV, handrun.SDXL_VAE_ARGV, TMP).returncode == 0
    assert not find_image_blocks(_image(device, handrun.SDXL_OUTPUT)).boxes


def test_failure_3_tmp_first_in_ld_library_path_loses_attention(sim_farm: SimFarm,
                                                                  assets: Path) -> None:
    device = pushed(sim_farm, "sm8650-16g", assets)
    assert _sdxl_unet(device).returncode == 0
    env = {**handrun.SDXL_VAE_ENV,
           "LD_LIBRARY_PATH": "/data/local/tmp:/data/local/tmp/MNN_fuse:/system/lib64:/vendor/lib64"}
    result = sh(device, env, handrun.SDXL_VAE_ARGV, TMP)
    assert result.returncode != 0
    assert "Attention" in result.stderr


def test_failure_4_vae_outside_data_local_tmp_cannot_write_output(sim_farm: SimFarm,
                                                                   assets: Path) -> None:
    device = pushed(sim_farm, "sm8650-16g", assets)
    assert _sdxl_unet(device).returncode == 0
    argv = [f"{TMP}/sdxl_vae_decoder_run", *handrun.SDXL_VAE_ARGV[1:]]
    result = sh(device, handrun.SDXL_VAE_ENV, argv, "/")
    assert result.returncode != 0
    assert "output" in result.stderr


def test_failure_5_memory_oom_apps_then_the_kernel_kills_it(sim_farm: SimFarm,
                                                             assets: Path) -> None:
    device = pushed(sim_farm, "sm8650-16g", assets)
    single = _sdxl_unet(device, SDXL_UNET_ONLY=None, SDXL_LATENT_OUT=None)
    assert single.returncode == 137, "CLIP+UNet+VAE in one process exceeds 16 GB"
    preinit = _sdxl_unet(device, SDXL_PREINIT="1")
    assert preinit.returncode == 137, "CLIP and UNet resident together exceed 16 GB"
    logcat = device.shell("logcat -d")
    assert "lowmemorykiller: Kill 'com.android.chrome'" in logcat, "lmkd kills apps first"
    assert "Kill 'sdxl_pipeline_r" not in logcat, "and never the adb shell binary"
    denied = device.shell2("dmesg", timeout=30, v2=True)
    assert (denied.returncode, denied.stderr.strip()) == (1, "dmesg: klogctl: Permission denied")
    small = pushed(sim_farm, "sm8550-12g", assets)  # rooted: su reads the kernel log
    assert _sdxl_unet(small).returncode == 137, "SDXL 1024 needs a 16 GB phone"
    assert re.search(r"Out of memory: Killed process \d+ \(sdxl_pipeline_r\)",
                     small.shell("su -c dmesg"))
    big = pushed(sim_farm, "sm8650-24g", assets)
    assert _sdxl_unet(big, SDXL_UNET_ONLY=None, SDXL_LATENT_OUT=None).returncode == 0


def test_failure_5_meminfo_and_proc_status_show_the_footprint(sim_farm: SimFarm,
                                                             assets: Path) -> None:
    device = pushed(sim_farm, "sm8650-16g", assets)

    def available_kb() -> int:
        for line in device.shell("cat /proc/meminfo").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
        raise AssertionError("no MemAvailable")

    idle = available_kb()
    env = {**handrun.SDXL_UNET_ENV, "HARNESS_SIM_TIME_SCALE": "0.2"}
    worker = threading.Thread(target=lambda: sh(device, env, handrun.SDXL_UNET_ARGV))
    worker.start()
    try:
        seen_rss = 0
        lowest = idle
        deadline = time.monotonic() + 60
        while worker.is_alive() and time.monotonic() < deadline:
            lowest = min(lowest, available_kb())
            pid = device.shell("pidof -x sdxl_pipeline_run 2>/dev/null || "
                               "pgrep -f sdxl_pipeline_run | head -n 1").split()
            if pid:
                status = device.shell(f"cat /proc/{pid[0]}/status 2>/dev/null")
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        seen_rss = max(seen_rss, int(line.split()[1]))
            time.sleep(0.1)
    finally:
        worker.join()
    assert idle - lowest > 8_000_000, "MemAvailable must drop by the UNet's footprint"
    assert seen_rss > 8_000_000, "the process's VmRSS must show the simulated footprint"
    assert available_kb() > idle - 500_000, "and come back when it ends"


def test_failure_6_heat_throttles_and_idle_cools(sim_farm: SimFarm, assets: Path) -> None:
    from harness.sim.profiles import load_profile
    from harness.sim.state import PhoneState

    device = pushed(sim_farm, "sm8650-16g", assets)
    record = sim_farm.phone("sm8650-16g")
    state = PhoneState(record.layout.ctl)
    state.set_temperature(30.0)
    argv = ["/data/local/tmp/sd15_pipeline_run", "/data/local/tmp/sd15_clml/sd15_clml_weights",
            "20"]

    def s_per_step() -> float:
        out = sh(device, {"CLML_NO_REUSE_TNN": "1"}, argv).output
        line = next(ln for ln in out.splitlines() if ln.startswith("[Perf] steps="))
        return float(line.split("s/step=")[1])

    def battery_c() -> float:
        return int(device.shell("dumpsys battery | grep temperature").split()[-1]) / 10

    def soc_millic() -> int:
        return int(device.shell("cat /sys/class/thermal/thermal_zone0/temp"))

    cool = s_per_step()
    # From ambient, which the phone cannot cool below: on a busy host the wall-clock gaps
    # between runs (simulated cooling) can outweigh a run's heat, but never drop below it.
    ambient = load_profile(record.profile).thermal.ambient_c
    state.set_temperature(ambient)
    # Read the temperatures in the shell that ran the binary: a round trip later, on a busy
    # host, the phone may already have cooled back to ambient (a wall second is
    # 1 / time_scale simulated seconds). thermal_zone*/temp is a live read on a real phone
    # (drivers/thermal/thermal_sysfs.c temp_show -> thermal_zone_get_temp); the virtual
    # phone's binary has its files rewritten after each change of heat, so no wait is needed.
    zone = "/sys/class/thermal/thermal_zone0/temp"
    warmed = device.shell(handrun.shell_line({"CLML_NO_REUSE_TNN": "1"}, argv)
                          + f" >/dev/null 2>&1; cat {zone}; "
                            "dumpsys battery | grep temperature").split()
    assert int(warmed[0]) > ambient * 1000 and int(warmed[-1]) / 10 >= ambient, \
        "a run warms the phone"
    # Held at 95 °C while it runs: the phone cools in simulated time, which is wall time
    # scaled, so on a busy host it would cool before the binary even started.
    held = threading.Event()

    def hold_hot() -> None:
        while not held.wait(0.05):
            state.set_temperature(95.0)

    state.set_temperature(95.0)
    holder = threading.Thread(target=hold_hot)
    holder.start()
    try:
        hot = s_per_step()
    finally:
        held.set()
        holder.join()
    assert hot > cool * 1.1, "a hot phone throttles"
    warm = soc_millic()
    time.sleep(1.5)
    assert soc_millic() < warm, "idle cools"


@pytest.mark.parametrize(
    ("what", "command", "message"),
    [
        ("weights", f"rm -rf {TMP}/sdxl_clml", "sdxl_clml_weights"),
        ("clip", f"rm -f {TMP}/MNN_clip/clip_2_int8.mnn.weight", "clip_2_int8.mnn.weight"),
        ("ids", f"head -c 100 /dev/zero > {TMP}/clip_l_ids.i32", "clip_l_ids.i32"),
        ("libs", f"rm -rf {TMP}/MNN_fuse {TMP}/libMNN.so", "CANNOT LINK EXECUTABLE"),
    ],
)
def test_failure_7_missing_files_give_the_real_error(sim_farm: SimFarm, assets: Path, what: str,
                                                     command: str, message: str) -> None:
    device = pushed(sim_farm, "sm8650-16g", assets)
    device.shell(command)
    result = _sdxl_unet(device)
    assert result.returncode != 0, what
    assert message in result.stderr + result.stdout


def test_a_change_of_heat_shows_at_once_in_the_zone_file(sim_farm: SimFarm) -> None:
    """thermal_zone*/temp is a live read on a real phone; the virtual phone's daemon rewrites
    its zone files when a binary (here: the test, through the same call) asks as it ends."""
    from harness.sim.state import PhoneState

    record = sim_farm.phone("sm8650-16g")
    device = sim_farm.device(record)
    state = PhoneState(record.layout.ctl)

    def zone_millic() -> int:
        return int(device.shell("cat /sys/class/thermal/thermal_zone0/temp"))

    # Without the refresh the file would still show the previous value until the next
    # 0.25 s tick. (The zone reads the SoC plus a sensor offset that grows with the rise over
    # ambient, a few degrees at most; the phone cools only slowly: its time constant is 300
    # simulated seconds, 30 wall seconds.)
    state.set_temperature(31.0)
    assert state.request_refresh(), "the phone's daemon answers a refresh request"
    before = zone_millic()
    state.set_temperature(47.5)
    assert state.request_refresh()
    # zone0 (aoss-0) reads 4.0 degC low at full rise: 29.8 -> 43.5 degC, a 13.7 degC step.
    assert zone_millic() - before > 10_000, "a 16.5 degC rise shows in the very next read"
