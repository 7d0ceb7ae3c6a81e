"""Fidelity on the virtual phone: metric names, input checks, true hints, heat, a vanished
phone, and the front-door options (issue 10, points 3, 4, 6 and 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.device.device import AdbEndpoint, Device
from harness.results.store import Store
from harness.sim.farm import PhoneRecord
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e
COOL_LIMITS = "thermal: {battery_c: 90, cpu_c: 110}\n"  # heat is not what most tests look at


def _farm_file(tmp_path: Path, port: int, extra: str = COOL_LIMITS) -> Path:
    path = tmp_path / "farm.yaml"
    path.write_text(f"servers: [{{name: virtual, port: {port}}}]\nsim: false\n{extra}")
    return path


@pytest.fixture()
def farm_file(tmp_path: Path, sim_farm: SimFarm) -> Path:
    return _farm_file(tmp_path, sim_farm.state.adb_port)


SLOW_COOLER = """extends: sm8650-16g
# Cools in seconds of wall time at the tests' time scale (not in a blink), so that a test
# can see it hot at the start of a run and then wait for it to cool.
thermal: {cool_tau_s: 1500, battery_tau_s: 1000}
"""


@pytest.fixture()
def own_phone(sim_farm: SimFarm, harness_home: Path) -> Iterator[PhoneRecord]:
    """A phone of this test's own (heated, removed...), gone afterwards."""
    profiles = harness_home / "sim" / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "slow-cooler.yaml").write_text(SLOW_COOLER)
    record = sim_farm.farm.add_phone("slow-cooler")
    try:
        yield record
    finally:
        if any(p.serial == record.serial for p in sim_farm.phones):
            sim_farm.farm.remove_phone(record.serial)


def harness(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=tmp_path,
                          env={**os.environ, **(env or {})})


def run_json(tmp_path: Path, farm_file: Path, serial: str, recipe: str,
             *extra: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    result = harness(tmp_path, "run", recipe, "-d", serial, "--farm", str(farm_file),
                     "--db", str(tmp_path / "results.sqlite"), "--json", *extra)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def _device(sim_farm: SimFarm, serial: str) -> Device:
    return Device(serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))


# ---- 3: one name per figure, whatever the label words -------------------------------------

def test_label_words_do_not_change_metric_names(tmp_path: Path, sim_farm: SimFarm,
                                                farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-24g").adb_serial
    names = {}
    for style in ("seed", "words", "bare"):
        code, summary, _ = run_json(tmp_path, farm_file, serial, "sdxl-1024-unet", "--set",
                                    f"unet.env.SIM_PERF_LABELS={style}")
        assert code == 0, summary["diagnosis"]
        assert summary["verdicts"] == [], style
        # the binary's figures; harness's own (the outputs' colour-block share) aside
        names[style] = {m for m in summary["steps"][0]["metrics"]
                        if not m.endswith(".blocks_fraction")}
    assert names["seed"] == names["words"] == names["bare"] == {"init_s", "unet.loop_s",
                                                                "unet.s/step"}
    stdout = (tmp_path / summary["run_dir"] / "00-unet.stdout").read_text()
    assert "[Perf] loop_s=" in stdout  # the bare binary really printed other names


def test_a_declared_metric_that_is_not_printed_is_a_verdict(tmp_path: Path, sim_farm: SimFarm,
                                                            farm_file: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "unet-peak.yaml").write_text(
        "extends: sdxl-1024-unet\nsteps:\n  - name: unet\n"
        "    perf: [init_s, unet.loop_s, unet.peak_mb]\n")
    serial = sim_farm.phone("sm8650-24g").adb_serial
    code, summary, err = run_json(tmp_path, farm_file, serial, "unet-peak", "--recipes-dir",
                                  str(recipes))
    assert code == 0
    assert summary["verdicts"] == ["unet: expected metric unet.peak_mb was not printed"]
    assert "warning: unet: expected metric unet.peak_mb" in err
    with Store.open(tmp_path / "results.sqlite") as store:
        assert "unet.peak_mb was not printed" in (store.get_run(summary["run_id"]).run.verdict
                                                  or "")


# ---- 4: inputs, true hints, nothing written into a weights tree, lint refusal --------------

def test_sd15_ids_live_outside_the_weights_and_a_missing_folder_stays_missing(
        tmp_path: Path, sim_farm: SimFarm, farm_file: Path) -> None:
    serial = sim_farm.phone("sm8475-8g").adb_serial
    device = _device(sim_farm, serial)
    weights = "/data/local/tmp/sd15_clml/sd15_clml_weights"
    code, cat, _ = run_json(tmp_path, farm_file, serial, "sd15-512", "--prompt", "a cat")
    assert code == 0, cat["diagnosis"]
    shipped = _read(device, tmp_path, f"{weights}/clip_ids.i32")
    code, boat, _ = run_json(tmp_path, farm_file, serial, "sd15-512", "--prompt", "a boat")
    assert code == 0
    assert _read(device, tmp_path, f"{weights}/clip_ids.i32") == shipped  # never rewritten
    assert len(_read(device, tmp_path, "/data/local/tmp/sd15_clip_ids.i32")) == 2 * 77 * 4
    png = [Path(s["steps"][0]["outputs"]["image"]) for s in (cat, boat)]
    assert (tmp_path / png[0]).read_bytes() != (tmp_path / png[1]).read_bytes()
    device.run(f"rm -rf {weights}", check=True)
    code, summary, _ = run_json(tmp_path, farm_file, serial, "sd15-512", "--no-sync")
    assert code == 5
    assert summary["diagnosis"] == (
        f"pipeline: not started: missing on the phone: {weights} (from asset set "
        f"sd15-weights); push it: harness push sd15-weights -d {serial}")
    assert device.run(["test", "-e", weights]).exit_code == 1  # harness did not re-create it
    with Store.open(tmp_path / "results.sqlite") as store:
        (step,) = store.get_run(summary["run_id"]).steps
        assert step.exit_code is None and "not started" in (step.diagnosis or "")


def test_a_missing_mnn_file_fails_before_the_step_runs(tmp_path: Path, sim_farm: SimFarm,
                                                       farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-24g").adb_serial
    device = _device(sim_farm, serial)
    assert run_json(tmp_path, farm_file, serial, "sdxl-1024-unet")[0] == 0
    device.run("rm -f /data/local/tmp/MNN_fuse/libMNN_CL.so", check=True)
    code, summary, _ = run_json(tmp_path, farm_file, serial, "sdxl-1024", "--no-sync")
    assert code == 5
    assert "/data/local/tmp/MNN_fuse/libMNN_CL.so (from asset set mnn-fuse)" in \
        summary["diagnosis"]
    assert summary["steps"][0]["seconds"] == 0.0  # the binary never started
    code, summary, _ = run_json(tmp_path, farm_file, serial, "sdxl-1024-unet")  # sync repairs
    assert code == 0, summary["diagnosis"]


def test_a_library_off_the_path_is_not_blamed_on_a_missing_set(
        tmp_path: Path, sim_farm: SimFarm, farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-24g").adb_serial
    code, summary, _ = run_json(tmp_path, farm_file, serial, "sdxl-1024-unet", "--set",
                                "unet.env.LD_LIBRARY_PATH=/system/lib64:/vendor/lib64")
    assert code == 5
    assert "CANNOT LINK EXECUTABLE" in summary["diagnosis"]
    assert "is on the phone at /data/local/tmp/MNN_fuse/libMNN.so" in summary["diagnosis"]
    assert "push" not in summary["diagnosis"]


def test_lint_errors_are_refused_before_anything_runs(tmp_path: Path, sim_farm: SimFarm,
                                                      farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-24g").adb_serial
    result = harness(tmp_path, "run", "sdxl-1024", "-d", serial, "--farm", str(farm_file),
                     "--db", str(tmp_path / "r.sqlite"), "--set", "vae.cwd=/data")
    assert result.returncode == 2
    assert "VAE_CWD [vae]" in result.stderr and "--force" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "r.sqlite").exists() and not (tmp_path / "logs").exists()


def test_oom_of_the_split_recipe_on_a_12gb_phone_names_phones_that_fit(
        tmp_path: Path, sim_farm: SimFarm) -> None:
    farm_file = _farm_file(tmp_path, sim_farm.state.adb_port)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "sdxl-small.yaml").write_text("extends: sdxl-1024\nrequirements: "
                                             "{min_ram_gb: 12}\n")
    serial = sim_farm.phone("sm8550-12g").adb_serial
    code, summary, _ = run_json(tmp_path, farm_file, serial, "sdxl-small", "--force",
                                "--recipes-dir", str(recipes))
    assert code == 5
    text = summary["diagnosis"]
    assert "use the split" not in text
    assert "the phone has 12 GB of RAM, too little" in text
    fits = {p.adb_serial for p in sim_farm.phones if p.profile in ("sm8650-16g", "sm8650-24g")}
    assert all(s in text for s in fits), text
    assert any(v.startswith("lint SDXL_RAM (run with --force): ") for v in summary["verdicts"])


# ---- 6: hot phones, vanished phones ----------------------------------------------------------

def test_hot_start_is_warned_stored_and_waited_out(tmp_path: Path, sim_farm: SimFarm,
                                                   own_phone: PhoneRecord) -> None:
    farm_file = _farm_file(tmp_path, sim_farm.state.adb_port, "")
    serial = own_phone.adb_serial
    assert harness(tmp_path, "sim", "heat", own_phone.serial, "60").returncode == 0
    code, summary, err = run_json(tmp_path, farm_file, serial, "sd15-512")
    assert code == 0
    hot = [v for v in summary["verdicts"] if v.startswith("hot-start: ")]
    assert hot and "> 35 °C" in hot[0], summary["verdicts"]
    assert "warning: hot-start" in err
    shown = harness(tmp_path, "runs", "show", summary["run_id"], "--db",
                    str(tmp_path / "results.sqlite"))
    assert "temperatures: before battery" in shown.stdout
    assert "hottest zone" in shown.stdout and "- hot-start: " in shown.stdout
    assert harness(tmp_path, "sim", "heat", own_phone.serial, "60").returncode == 0
    result = harness(tmp_path, "run", "sd15-512", "-d", serial, "--farm", str(farm_file),
                     "--db", str(tmp_path / "results.sqlite"), "--wait-cool", "120")
    assert result.returncode == 0, result.stderr
    assert "is hot" in result.stderr and "waiting up to 120 s for it to cool" in result.stderr
    assert "cooled down" in result.stderr
    with Store.open(tmp_path / "results.sqlite") as store:
        run = store.list_runs(1)[0]
        assert "hot-start" not in (run.verdict or "")
        assert (run.temps_before or {})["battery_c"] <= 35


def test_a_phone_that_vanishes_mid_step_is_announced_and_stored(
        tmp_path: Path, sim_farm: SimFarm, own_phone: PhoneRecord) -> None:
    farm_file = _farm_file(tmp_path, sim_farm.state.adb_port)
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "sdxl-1024-unet", "-d",
                             own_phone.adb_serial, "--farm", str(farm_file), "--db", str(db),
                             "--set", "steps=400", "--offline-wait", "3"], cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        assert proc.stderr is not None
        while "UNet step 2/" not in proc.stderr.readline():
            assert proc.poll() is None and time.monotonic() < deadline, "run ended early"
        sim_farm.farm.remove_phone(own_phone.serial)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 5, err
    assert f"{own_phone.adb_serial} offline; waiting up to 3 s for it to come back" in err
    assert "Traceback" not in err
    with Store.open(db) as store:
        detail = store.get_run(store.list_runs(1)[0].id)
    assert detail.run.status == "failed"
    (step,) = detail.steps
    assert step.exit_code is None
    assert "UNet step 1/" in step.stdout_tail
    assert "went offline during the step" in (step.diagnosis or "")
    assert "went offline" in (detail.run.diagnosis or "")


# ---- 7: front-door frictions -------------------------------------------------------------------

def test_devices_names_unreachable_servers(tmp_path: Path, sim_farm: SimFarm) -> None:
    from harness.device.adb import free_port

    dead = free_port()
    path = tmp_path / "farm.yaml"
    path.write_text(f"servers:\n  - {{name: virtual, port: {sim_farm.state.adb_port}}}\n"
                    f"  - {{name: gone, port: {dead}}}\nsim: false\n")
    result = harness(tmp_path, "devices", "--farm", str(path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [u["server"] for u in data["unreachable"]] == ["gone"]
    assert data["unreachable"][0]["port"] == dead
    assert {d["serial"] for d in data["devices"]} >= {p.adb_serial for p in sim_farm.phones}
    assert f"warning: adb server gone (127.0.0.1:{dead}) could not be reached" in result.stderr
    table = harness(tmp_path, "devices", "--farm", str(path))
    assert "adb server gone" in table.stderr


def test_adb_environment_finds_the_server_and_the_phone(tmp_path: Path,
                                                        sim_farm: SimFarm) -> None:
    home = {"HARNESS_HOME": str(tmp_path / "home")}  # no farm file, no virtual farm state
    port = sim_farm.state.adb_port
    for env in ({"ADB_SERVER_SOCKET": f"tcp:127.0.0.1:{port}"},
                {"ANDROID_ADB_SERVER_PORT": str(port)}):
        result = harness(tmp_path, "devices", "--json", env={**home, **env})
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert {d["server"] for d in data["devices"]} == {"local"}
        assert {d["serial"] for d in data["devices"]} >= {p.adb_serial for p in sim_farm.phones}
    serial = sim_farm.phone("sm8650-24g").adb_serial
    status = harness(tmp_path, "assets", "status", "--json",
                     env={**home, "ANDROID_ADB_SERVER_PORT": str(port), "ANDROID_SERIAL": serial})
    assert status.returncode == 0, status.stderr
    assert {r["serial"] for r in json.loads(status.stdout)} == {serial}


def test_assets_status_lists_every_set_and_marks_absent_sources(tmp_path: Path,
                                                                 sim_farm: SimFarm,
                                                                 farm_file: Path) -> None:
    home = tmp_path / "home"
    (home / "recipes").mkdir(parents=True)
    (home / "recipes" / "assets.yaml").write_text(
        "sets:\n  mine:\n    description: not built yet\n    entries:\n"
        f"      - {{src: {tmp_path}/nothing-here, dest: /data/local/tmp/mine}}\n")
    serial = sim_farm.phone("sm8650-24g").adb_serial
    env = {"HARNESS_HOME": str(home)}
    result = harness(tmp_path, "assets", "status", "-d", serial, "--farm", str(farm_file),
                     "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {r["set"]: r for r in json.loads(result.stdout)}
    assert rows["mine"]["status"] == "no source"
    assert "nothing-here" in rows["mine"]["detail"]
    assert {"sdxl-weights", "mnn-fuse", "sd15-weights"} <= set(rows)
    named = harness(tmp_path, "assets", "status", "mine", "-d", serial, "--farm",
                    str(farm_file), env=env)
    assert named.returncode == 2 and "does not exist" in named.stderr


def _read(device: Device, tmp_path: Path, path: str) -> bytes:
    """A file's bytes on the phone (pulled through the sync protocol)."""
    dest = tmp_path / "pulled" / path.strip("/").replace("/", "_")
    dest.parent.mkdir(exist_ok=True)
    device.pull(path, dest)
    return dest.read_bytes()
