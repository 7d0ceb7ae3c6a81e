"""``harness sim up/status/down`` as a user runs them, and the sandbox's fallback modes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.device.adb import adb_binary, port_open
from harness.device.device import AdbEndpoint, Device
from harness.device.procs import pid_alive
from harness.sim.assets import build_demo_assets
from harness.sim.farm import Farm
from tests import handrun
from tests.helpers import harness
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e


def test_sim_up_status_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = harness("sim", "up", "--phones", "2", "--time-scale", "0.01", "--json", home=home)
    assert up.returncode == 0, up.stderr
    farm = json.loads(up.stdout)
    try:
        port = farm["adb_port"]
        assert port != 5037 and farm["healthy"]
        status = json.loads(harness("sim", "status", "--json", home=home).stdout)
        assert status["adb_port"] == port
        devices = subprocess.run([adb_binary(), "-P", str(port), "devices", "-l"],
                                 capture_output=True, text=True, timeout=30,
                                 env={**os.environ, "HOME": str(home)}).stdout
        for phone in farm["phones"]:
            assert f"{phone['adb_serial']}" in devices
        again = harness("sim", "up", home=home)
        assert again.returncode == 4 and "already running" in again.stderr
        table = harness("sim", "status", home=home).stdout
        assert "sim01-sm8650" in table and str(port) in table
    finally:
        down = harness("sim", "down", home=home)
    assert down.returncode == 0 and "stopped 2 phone(s)" in down.stdout
    assert not pid_alive(farm["adb_pid"])
    assert all(not pid_alive(p["pid"]) for p in farm["phones"])
    assert not port_open(farm["adb_port"])
    assert "no virtual farm is running" in harness("sim", "status", home=home).stdout


def test_sim_errors_are_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = harness("sim", "up", "--profile", "sm8650-16gb", home=home)
    assert bad.returncode == 2 and "did you mean 'sm8650-16g'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert harness("sim", "up", "--adb-port", "5037", home=home).returncode == 4
    removed = harness("sim", "remove", "nope", home=home)
    assert removed.returncode == 4 and "no virtual farm is running" in removed.stderr


def test_add_and_remove_a_phone_mid_test(sim_farm: SimFarm) -> None:
    record = sim_farm.farm.add_phone("sm8475-8g")
    try:
        assert sim_farm.adb("-s", record.adb_serial, "shell", "getprop ro.soc.model"
                            ).stdout.strip() == b"SM8475"
    finally:
        sim_farm.farm.remove_phone(record.serial)
    devices = sim_farm.adb("devices").stdout.decode()
    assert record.adb_serial not in devices
    assert not pid_alive(record.pid)


@pytest.mark.parametrize("mode", ["userns", "rewrite"])
def test_fallback_modes_still_run_the_seed_flows(tmp_path: Path, mode: str) -> None:
    if mode == "userns":
        probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                               capture_output=True, check=False)
        if probe.returncode != 0:
            pytest.skip("unprivileged user namespaces are not available here")
    os.environ["HARNESS_SIM_MODE"] = mode
    try:
        farm = Farm(tmp_path / "farm")
        state = farm.up(["sm8650-16g", "sm8550-12g"], time_scale=0.005)
    finally:
        del os.environ["HARNESS_SIM_MODE"]
    try:
        assert state.mode == mode
        sim = SimFarm(farm)
        device = sim.device(state.phones[0])
        assets = build_demo_assets(tmp_path / "assets")
        sdxl = handrun.sdxl_split(device, assets, tmp_path / "out")
        assert [s.exit_code for s in sdxl.steps] == [0, 0], [s.output for s in sdxl.steps]
        assert sdxl.png is not None and sdxl.png.exists()
        sd15 = handrun.sd15(device, assets, tmp_path / "out15")
        assert sd15.steps[-1].exit_code == 0, sd15.steps[-1].output
        assert device.shell("getprop ro.soc.model").strip() == "SM8650"
        # The pushed binary is in the phone's own root on the host (both modes) ...
        assert Path(state.phones[0].base, "root/data/local/tmp/sdxl_pipeline_run").is_file()
        if mode == "rewrite":
            # ... and, without a mount namespace to catch it, nothing went to the host's own
            # /data/local/tmp (these tests run as root in CI: a missed rewrite would create it).
            assert not Path("/data/local/tmp/sdxl_pipeline_run").exists()
        # Only the rooted profile (sm8550-12g) looks rooted: the host's su stays out of reach.
        endpoint = AdbEndpoint("127.0.0.1", state.adb_port)
        rooted = [Device(p.adb_serial, endpoint).facts().rooted for p in state.phones]
        assert rooted == [False, True]
    finally:
        farm.down()
