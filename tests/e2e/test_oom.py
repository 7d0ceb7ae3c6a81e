"""Out-of-memory verdicts end to end (issue 14, point 2): ``harness run`` on virtual phones
that behave as AOSP does (lmkd kills apps, the kernel's OOM killer kills the binary, dmesg for
root only) and on a vendor profile whose lmkd names the binary."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.device.device import AdbEndpoint, Device
from harness.results.store import Store
from harness.sim.farm import PhoneRecord
from tests.helpers import harness
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e
PREINIT = ("--force", "--set", "unet.env.SDXL_PREINIT=1")
APP_KILL = re.compile(r" I lowmemorykiller: Kill '(com\.[\w.]+)' \(\d+\), uid \d+, "
                      r"oom_score_adj (\d+) to free \d+kB rss")


def run_json(tmp_path: Path, farm_file: Path, serial: str, recipe: str,
             *extra: str) -> tuple[int, dict[str, Any]]:
    result = harness("run", recipe, "-d", serial, "--farm", str(farm_file),
                     "--db", str(tmp_path / "results.sqlite"), "--json", *extra, cwd=tmp_path)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def _device(sim_farm: SimFarm, record: PhoneRecord) -> Device:
    return Device(record.adb_serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))


def _nothing_left(sim_farm: SimFarm, record: PhoneRecord, pid: int | None = None) -> None:
    """No simulated binary holds memory on the phone (its own process table: `ps` in the
    sandbox would also list other farms' processes on this host), nor is the killed one
    there."""
    from harness.sim.state import PhoneState

    assert PhoneState(record.layout.ctl).processes() == []
    if pid is not None:
        gone = _device(sim_farm, record).run(f"[ -d /proc/{pid} ] || echo gone").out
        assert gone.strip() == "gone"


def test_non_rooted_phone_apps_first_then_the_kernel(tmp_path: Path, sim_farm: SimFarm,
                                                     farm_file: Path) -> None:
    record = sim_farm.phone("sm8650-16g")
    device = _device(sim_farm, record)
    device.shell("logcat -c")
    code, summary = run_json(tmp_path, farm_file, record.adb_serial, "sdxl-1024", *PREINIT)
    assert code == 5 and summary["status"] == "failed"
    unet = summary["steps"][0]
    assert unet["exit_code"] == 137, "SIGKILL through adb shell: 128 + 9"
    text = unet["diagnosis"]
    assert text.startswith("out of memory (likely): sdxl_pipeline_run was killed by the "
                           "kernel's OOM killer (SIGKILL 137; its own log line is not "
                           "readable)"), text
    assert "kernel log unreadable (dmesg: klogctl: Permission denied)" in text
    assert "on a 16 GB (MemTotal 14.9 GB) phone" in text
    assert "remedy: drop SDXL_PREINIT" in text
    verdict = unet["oom"]
    assert verdict["confidence"] == "likely" and verdict["kernel_line"] is None
    assert verdict["phase"]["name"] == "UNet", verdict["phase"]
    killed = [k["name"] for k in verdict["apps_killed"]]
    assert killed[0] == "com.android.chrome" and len(killed) == 5, killed
    # lmkd's own words in logcat: apps, highest oom_score_adj first, never the binary
    logcat = device.shell("logcat -d -s lowmemorykiller")
    adjs = [int(m.group(2)) for m in APP_KILL.finditer(logcat)]
    assert len(adjs) >= 5 and adjs[-5:] == sorted(adjs[-5:], reverse=True), logcat
    assert "sdxl_pipeline" not in logcat
    _nothing_left(sim_farm, record)
    folder = tmp_path / summary["run_dir"]
    assert json.loads((folder / "00-unet.oom.json").read_text())["process"] == \
        "sdxl_pipeline_run"
    with Store.open(tmp_path / "results.sqlite") as store:
        detail = store.get_run(summary["run_id"])
        assert detail.metric("oom.apps_killed", "unet") == 5.0
        assert detail.metric("oom.mem_total_kb", "unet") == 15601452
        assert detail.steps[0].diagnosis == text


def test_rooted_phone_the_kernel_line_names_the_binary(tmp_path: Path, sim_farm: SimFarm,
                                                       farm_file: Path) -> None:
    record = sim_farm.phone("sm8550-12g")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "sdxl-on-12.yaml").write_text("extends: sdxl-1024\nrequirements: "
                                             "{min_ram_gb: 12}\n")
    code, summary = run_json(tmp_path, farm_file, record.adb_serial, "sdxl-on-12", "--force",
                             "--recipes-dir", str(recipes))
    assert code == 5
    verdict = summary["steps"][0]["oom"]
    assert verdict["confidence"] == "certain", verdict
    assert re.fullmatch(r"\[ *\d+\.\d{6}\] Out of memory: Killed process \d+ "
                        r"\(sdxl_pipeline_r\) total-vm:\d+kB, anon-rss:\d+kB, file-rss:\d+kB, "
                        r"shmem-rss:0kB, UID:2000 pgtables:\d+kB oom_score_adj:0",
                        verdict["kernel_line"]), verdict["kernel_line"]
    assert verdict["peak_source"] == "kernel log" and verdict["peak_rss_kb"] > 8_000_000
    assert verdict["ram_gb"] == 12
    text = summary["diagnosis"]
    assert "was killed by the kernel's OOM killer" in text
    assert "a phone with at least 16 GB" in text
    fits = {p.adb_serial for p in sim_farm.phones if p.profile in ("sm8650-16g", "sm8650-24g")}
    assert all(s in text for s in fits), text
    _nothing_left(sim_farm, record, verdict["pid"])


VENDOR = "extends: sm8650-16g\noom_killer: lmkd\n"


@pytest.fixture()
def vendor_phone(sim_farm: SimFarm, harness_home: Path) -> Iterator[PhoneRecord]:
    profiles = harness_home / "sim" / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "vendor-lmkd.yaml").write_text(VENDOR)
    record = sim_farm.farm.add_phone("vendor-lmkd")
    try:
        yield record
    finally:
        sim_farm.farm.remove_phone(record.serial)


def test_vendor_lmkd_that_names_the_binary(tmp_path: Path, sim_farm: SimFarm,
                                          farm_file: Path, vendor_phone: PhoneRecord) -> None:
    code, summary = run_json(tmp_path, farm_file, vendor_phone.adb_serial, "sdxl-1024",
                             *PREINIT)
    assert code == 5
    verdict = summary["steps"][0]["oom"]
    assert verdict["confidence"] == "certain"
    assert verdict["killer"] == "low-memory killer (lmkd names it)"
    assert "Kill 'sdxl_pipeline_r'" in verdict["lmkd_line"]
    assert len(verdict["apps_killed"]) == 5
    assert summary["diagnosis"].startswith("unet: out of memory: sdxl_pipeline_run (pid ")
    _nothing_left(sim_farm, vendor_phone, verdict["pid"])
