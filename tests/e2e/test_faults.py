"""Every way a job can die leaves the phone and the store clean (real adb, virtual phones).

SIGTERM/SIGHUP mid-UNet, ``kill -9`` of harness (orphans on the phone, abandoned rows),
leases across homes and across hosts (the record on the phone), a killed adb server during
a push, and the virtual farm's own dead server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.assets.hashcache import HashCache
from harness.assets.sets import AssetEntry, AssetSet
from harness.assets.sync import Syncer
from harness.device.device import AdbEndpoint, Device
from harness.farm.lease import PHONE_LEASE, Lease, LeaseBusy, holder_of, read_phone_lease
from harness.results.store import Store
from harness.sim.farm import DEFAULT_PROFILES, private_farm
from tests.simfarm import SimFarm, phone_runs

pytestmark = pytest.mark.e2e

SLOW_UNET = ("--set", "steps=1000")  # the most allowed: ~16 s of UNet at the test scale


@pytest.fixture()
def farm_file(tmp_path: Path, sim_farm: SimFarm) -> Path:
    path = tmp_path / "farm.yaml"
    path.write_text(f"servers: [{{name: virtual, port: {sim_farm.state.adb_port}}}]\nsim: false\n")
    return path


def sim_device(sim_farm: SimFarm, profile: str = "sm8650-16g") -> Device:
    record = sim_farm.phone(profile)
    return Device(record.adb_serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port,
                                                 sim_farm.farm.restart_adb, "sim"))


def harness(cwd: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env or os.environ.copy())


def start_run(cwd: Path, farm_file: Path, serial: str, db: Path, *extra: str,
              env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``harness run sdxl-1024`` as a subprocess; returns once the UNet is under way."""
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "sdxl-1024", "-d",
                             serial, "--farm", str(farm_file), "--db", str(db), *SLOW_UNET,
                             *extra], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen: list[str] = []
    while "UNet step 3/" not in (line := proc.stderr.readline()):
        seen.append(line)
        if not line and proc.poll() is not None:
            raise AssertionError(f"run ended early ({proc.returncode}): {''.join(seen[-10:])}"
                                 f"{proc.stdout.read() if proc.stdout else ''}")
        assert time.monotonic() < deadline, "the UNet never started"
    return proc


def unet_running(device: Device) -> bool:
    return bool(phone_runs(device, "sdxl_pipeline_run"))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_end_a_run_like_ctrl_c(tmp_path: Path, sim_farm: SimFarm,
                                                 farm_file: Path, sig: int, code: int) -> None:
    device = sim_device(sim_farm)
    db = tmp_path / "r.sqlite"
    proc = start_run(tmp_path, farm_file, device.serial, db)
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"terminated by {signal.Signals(sig).name}" in err
    assert not unet_running(device)
    with Store.open(db) as store:
        run = store.list_runs()[0]
        assert run.status == "interrupted"
        assert signal.Signals(sig).name in (run.diagnosis or "")
        steps = store.get_run(run.id).steps
    assert [s.name for s in steps] == ["unet"]  # the running step, with its output so far
    assert steps[0].exit_code is None
    assert "UNet step 3/" in steps[0].stdout_tail + steps[0].stderr_tail
    summary = json.loads((tmp_path / (run.run_dir or "") / "run.json").read_text())
    assert [s["name"] for s in summary["steps"]] == ["unet"]
    assert holder_of(device.serial) is None
    assert read_phone_lease(device) is None


def test_ctrl_c_stores_the_running_steps_partial_output(tmp_path: Path, sim_farm: SimFarm,
                                                        farm_file: Path) -> None:
    device = sim_device(sim_farm)
    db = tmp_path / "r.sqlite"
    proc = start_run(tmp_path, farm_file, device.serial, db)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    with Store.open(db) as store:
        steps = store.get_run(store.list_runs()[0].id).steps
    assert steps and "UNet step" in steps[0].stdout_tail + steps[0].stderr_tail


@pytest.fixture()
def killed_run(tmp_path: Path, sim_farm: SimFarm, farm_file: Path) -> Iterator[Path]:
    """A ``harness run`` killed with SIGKILL mid-UNet: its UNet goes on on the phone."""
    device = sim_device(sim_farm)
    db = tmp_path / "r.sqlite"
    proc = start_run(tmp_path, farm_file, device.serial, db)
    proc.kill()
    proc.communicate(timeout=60)
    assert unet_running(device), "the orphan should still run on the phone"
    try:
        yield db
    finally:
        from harness.device.background import find_orphans, kill_orphans

        kill_orphans(device, find_orphans(device))


def test_sigkill_leaves_an_abandoned_row_and_an_orphan_doctor_lists(
        tmp_path: Path, sim_farm: SimFarm, farm_file: Path, killed_run: Path) -> None:
    device = sim_device(sim_farm)
    listed = harness(tmp_path, "runs", "list", "--db", str(killed_run), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows[0]["status"] == "abandoned"
    doctor = harness(tmp_path, "doctor", "--farm", str(farm_file), "--device", device.serial,
                     "--json")
    findings = [f for f in json.loads(doctor.stdout) if f["subject"] == device.serial]
    orphaned = [f for f in findings if f["message"].startswith("orphaned run")]
    assert len(orphaned) == 1, findings
    assert "sdxl-1024-unet" in orphaned[0]["message"]
    assert rows[0]["id"] in orphaned[0]["message"]  # the harness run it belonged to


def test_a_new_run_kills_the_orphan_or_refuses_with_keep_orphans(
        tmp_path: Path, sim_farm: SimFarm, farm_file: Path, killed_run: Path) -> None:
    device = sim_device(sim_farm)
    refused = harness(tmp_path, "run", "sd15-512", "-d", device.serial, "--farm",
                      str(farm_file), "--db", str(tmp_path / "b.sqlite"), "--keep-orphans")
    assert refused.returncode == 3, refused.stderr
    assert "run(s) of a dead harness still going" in refused.stderr
    assert "sdxl-1024-unet" in refused.stderr
    errors = [ln for ln in refused.stderr.splitlines() if not ln.startswith("warning:")]
    assert len(errors) == 1, refused.stderr
    assert "took over a stale lease record" in refused.stderr  # the dead run's
    assert unet_running(device)
    ran = harness(tmp_path, "run", "sd15-512", "-d", device.serial, "--farm", str(farm_file),
                  "--db", str(tmp_path / "b.sqlite"))
    assert ran.returncode == 0, ran.stderr
    assert "killed 1 orphaned run(s)" in ran.stderr
    assert not unet_running(device)


def test_two_harness_homes_cannot_share_a_phone(tmp_path: Path, sim_farm: SimFarm,
                                                farm_file: Path) -> None:
    device = sim_device(sim_farm)
    home_a, home_b = tmp_path / "home-a", tmp_path / "home-b"
    env_a = {**os.environ, "HARNESS_HOME": str(home_a)}
    env_b = {**os.environ, "HARNESS_HOME": str(home_b)}
    first = start_run(tmp_path, farm_file, device.serial, tmp_path / "a.sqlite", "--no-sync",
                      env=env_a)
    try:
        second = harness(tmp_path, "run", "sd15-512", "-d", device.serial, "--farm",
                         str(farm_file), "--db", str(tmp_path / "b.sqlite"), "--no-sync",
                         env=env_b)
        assert second.returncode == 3, second.stderr
        assert f"{device.serial}: in use by pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


def write_phone_record(device: Device, host: str, pid: int, age_s: int) -> None:
    device.run(f"mkdir -p /data/local/tmp/.harness && {{ echo host={host}; echo pid={pid}; "
               f"echo start=; echo purpose=nightly; echo ttl=60; "
               f"echo heartbeat=$(( $(date +%s) - {age_s} )); }} > {PHONE_LEASE}", check=True)


def test_a_live_lease_record_on_the_phone_refuses_another_host(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm, "sm8550-12g")
    write_phone_record(device, "lab-host-2", 4242, age_s=5)
    try:
        with pytest.raises(LeaseBusy, match=r"in use by pid 4242 on lab-host-2 \(nightly\)"):
            Lease(device.serial, "test", device=device).acquire()
        assert holder_of(device.serial) is None  # the host's lock was let go again
    finally:
        device.run(f"rm -f {PHONE_LEASE}")


def test_a_stale_lease_record_is_taken_over_and_kept_alive(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm, "sm8550-12g")
    write_phone_record(device, "lab-host-2", 4242, age_s=600)
    warnings: list[str] = []
    with Lease(device.serial, "test", device=device, on_warning=warnings.append, ttl_s=4):
        record = read_phone_lease(device)
        assert record is not None and record.holder.pid == os.getpid()
        assert any("took over a stale lease record of pid 4242" in w for w in warnings)
        first = record.heartbeat
        deadline = time.monotonic() + 10
        while (now := read_phone_lease(device)) is not None and now.heartbeat == first:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.2)
    assert read_phone_lease(device) is None


def test_push_recovers_when_the_adb_server_is_killed(tmp_path: Path, sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm, "sm8475-8g")
    src = tmp_path / "big"
    src.mkdir()
    for i in range(12):
        (src / f"w{i:02d}.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    dest = "/data/local/tmp/fault-push"
    device.run(f"rm -rf {dest}", check=True)
    killed = threading.Event()

    def progress(done: int, total: int, _path: str) -> None:
        if done > total // 4 and not killed.is_set():
            killed.set()
            os.kill(sim_farm.state.adb_pid, signal.SIGKILL)

    port = sim_farm.state.adb_port
    result = Syncer(device, HashCache(tmp_path / "h.sqlite")).sync(
        [AssetSet("big", [AssetEntry(src, dest, None)])], progress=progress)
    assert killed.is_set()
    assert sim_farm.state.adb_port == port  # the farm's own server came back on its port
    assert result.files_total == 12
    again = Syncer(device, HashCache(tmp_path / "h.sqlite")).sync(
        [AssetSet("big", [AssetEntry(src, dest, None)])], verify=True)
    assert again.pushed == () and again.mismatched == ()
    device.run(f"rm -rf {dest}")


def test_sim_up_and_run_readopt_a_farm_whose_adb_server_died(tmp_path: Path) -> None:
    # the user started the default farm, then added two phones of their own
    with private_farm(DEFAULT_PROFILES, time_scale=0.005) as (farm, _state, _tmp):
        env = dict(os.environ)  # private_farm set HARNESS_HOME to its own home
        farm.add_phone("sm8650-16g")
        farm.add_phone("sm8550-12g")
        before = farm.load()
        assert before is not None and len(before.phones) == 5
        phones = [(p.serial, p.port) for p in before.phones]

        os.kill(before.adb_pid, signal.SIGKILL)
        up = harness(tmp_path, "sim", "up", "--json", env=env)
        assert up.returncode == 0, up.stderr
        after = farm.load()
        assert after is not None
        assert (after.adb_port, [(p.serial, p.port) for p in after.phones]) == \
            (before.adb_port, phones)
        status = farm.status()
        assert status is not None and status.healthy

        os.kill(after.adb_pid, signal.SIGKILL)
        ran = harness(tmp_path, "run", "sd15-512", "--device", "sim", "--json", "--db",
                      str(tmp_path / "r.sqlite"), env=env)
        assert ran.returncode == 0, ran.stderr
        final = farm.load()
        assert final is not None
        assert [(p.serial, p.port) for p in final.phones] == phones
        assert final.adb_port == before.adb_port
