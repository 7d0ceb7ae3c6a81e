"""``harness run`` end to end: the CLI as a subprocess, real adb, virtual phones, real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from harness.device.device import AdbEndpoint, Device
from harness.results.store import Store
from tests.helpers import harness
from tests.simfarm import SimFarm, phone_runs

pytestmark = pytest.mark.e2e


def run_json(tmp_path: Path, farm_file: Path, serial: str, recipe: str,
             *extra: str) -> tuple[int, dict[str, Any]]:
    result = harness("run", recipe, "-d", serial, "--farm", str(farm_file),
                     "--db", str(tmp_path / "results.sqlite"), "--json", *extra, cwd=tmp_path)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def output_png(summary: dict[str, Any], step: str, name: str = "image") -> Path:
    for s in summary["steps"]:
        if s["name"] == step:
            return Path(s["outputs"][name])
    raise AssertionError(f"no step {step}")


def test_sdxl_1024_produces_a_deterministic_prompt_dependent_png(
        tmp_path: Path, sim_farm: SimFarm, farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    code, first = run_json(tmp_path, farm_file, serial, "sdxl-1024", "--prompt", "a red bicycle",
                           "--seed", "7")
    assert code == 0, first["diagnosis"]
    png = tmp_path / output_png(first, "vae")
    assert Image.open(png).size == (1024, 1024)
    assert first["steps"][0]["metrics"]["unet.s/step"] > 0
    assert "clip.ms" in first["steps"][0]["metrics"]
    assert first["steps"][1]["metrics"]["s/it"] > 0
    assert first["verdicts"] == []
    _, again = run_json(tmp_path, farm_file, serial, "sdxl-1024", "--prompt", "a red bicycle",
                        "--seed", "7")
    assert (tmp_path / output_png(again, "vae")).read_bytes() == png.read_bytes()
    _, other = run_json(tmp_path, farm_file, serial, "sdxl-1024", "--prompt", "a blue boat",
                        "--seed", "7")
    assert (tmp_path / output_png(other, "vae")).read_bytes() != png.read_bytes()
    _, reseeded = run_json(tmp_path, farm_file, serial, "sdxl-1024", "--prompt", "a red bicycle",
                           "--seed", "8")
    assert (tmp_path / output_png(reseeded, "vae")).read_bytes() != png.read_bytes()
    folder = tmp_path / first["run_dir"]
    for name in ("run.json", "plan.json", "device.json", "run.sh", "00-unet.stdout",
                 "01-vae.stderr", "00-unet.perf.json"):
        assert (folder / name).exists(), name
    with Store.open(tmp_path / "results.sqlite") as store:
        detail = store.get_run(first["run_id"])
        assert detail.run.status == "ok"
        assert {m.name for m in detail.metrics} >= {"unet.s/step", "s/it"}
        assert {o.name for o in detail.outputs} == {"latent", "image"}


def test_sd15_512_produces_a_png(tmp_path: Path, sim_farm: SimFarm, farm_file: Path) -> None:
    serial = sim_farm.phone("sm8475-8g").adb_serial
    code, summary = run_json(tmp_path, farm_file, serial, "sd15-512", "--seed", "3")
    assert code == 0, summary["diagnosis"]
    png = tmp_path / summary["steps"][0]["outputs"]["image"]
    assert Image.open(png).size == (512, 512)
    assert summary["steps"][0]["metrics"]["s/step"] > 0


@pytest.mark.parametrize(
    ("recipe", "sets", "status", "expect"),
    [
        ("sdxl-1024", ["vae.env.CLML_NO_REUSE_TNN=0"], "ok", "CLML_NO_REUSE_TNN"),
        ("sdxl-1024", ["unet.env.CLML_NO_REUSE_TNN=0"], "ok", "CLML_NO_REUSE_TNN"),
        ("sd15-512", ["pipeline.env.CLML_NO_REUSE_TNN=0"], "ok", "CLML_NO_REUSE_TNN"),
        ("sdxl-1024", ["early_decode_k=0", "unet.unset=SDXL_EXPORT_X0",
                       "unet.unset=SDXL_EARLY_DECODE_X0"], "ok", "SDXL_EXPORT_X0"),
        ("sdxl-1024", ["vae.env.LD_LIBRARY_PATH=/data/local/tmp:/data/local/tmp/MNN_fuse:"
                       "/system/lib64:/vendor/lib64"], "failed", "Attention"),
        ("sdxl-1024", ["vae.cwd=/data"], "failed", "working directory"),
        ("sdxl-1024", ["unet.env.SDXL_PREINIT=1"], "failed",
         "kernel's OOM killer (SIGKILL 137"),
        ("sdxl-1024-single", [], "failed", "remedy: split SDXL into a UNet-only process"),
    ],
)
def test_failure_modes_end_with_the_right_diagnosis(tmp_path: Path, sim_farm: SimFarm,
                                                    farm_file: Path, recipe: str,
                                                    sets: list[str], status: str,
                                                    expect: str) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    if expect == "Attention":
        # The seed's phones keep an older MNN (no Attention op) in /data/local/tmp; another
        # test may have deleted this phone's copy.
        from harness.sim.assets import build_demo_assets

        demo = build_demo_assets(tmp_path / "demo")
        sim_farm.device(sim_farm.phone("sm8650-16g")).sync.push(demo / "libMNN.so",
                                                                "/data/local/tmp/libMNN.so")
    args = [a for s in sets for a in ("--set", s)]
    code, summary = run_json(tmp_path, farm_file, serial, recipe, "--force", *args)
    assert summary["status"] == status
    assert code == (0 if status == "ok" else 5)
    text = summary["diagnosis"] if status == "failed" else " ".join(summary["verdicts"])
    assert expect in text
    if status == "ok":  # the corruption is colour blocks, found as such (not NaN)
        assert "colour blocks over" in text and "NaN" not in text, text
        overlays = [path for step in summary["steps"]
                    for name, path in step["outputs"].items() if name.endswith(".blocks")]
        assert overlays and all((tmp_path / p).exists() for p in overlays), summary["steps"]
    with Store.open(tmp_path / "results.sqlite") as store:
        run = store.get_run(summary["run_id"]).run
        assert run.status == status
        assert expect in ((run.diagnosis or "") + (run.verdict or ""))


def test_missing_assets_are_diagnosed(tmp_path: Path, sim_farm: SimFarm,
                                      farm_file: Path) -> None:
    serial = sim_farm.phone("sm8550-12g").adb_serial
    device = Device(serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    code, summary = run_json(tmp_path, farm_file, serial, "sd15-512")
    assert code == 0
    device.run("rm -rf /data/local/tmp/sd15_clml", check=True)
    code, summary = run_json(tmp_path, farm_file, serial, "sd15-512", "--no-sync")
    assert code == 5
    assert "missing on the phone" in summary["diagnosis"]


def test_ctrl_c_mid_unet_leaves_nothing_running(tmp_path: Path, sim_farm: SimFarm,
                                               farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    device = Device(serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A slow UNet (many steps) so that Ctrl-C lands in the middle of it.
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "sdxl-1024", "-d", serial,
                             "--farm", str(farm_file), "--db", str(tmp_path / "r.sqlite"),
                             "--set", "steps=400"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while "UNet step 3/" not in (line := proc.stderr.readline() if proc.stderr else ""):
            assert line or proc.poll() is None, "run ended early"
            assert time.monotonic() < deadline
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert phone_runs(device, "sdxl_pipeline_run") == []
    with Store.open(tmp_path / "r.sqlite") as store:
        runs = store.list_runs()
        assert runs[0].status == "interrupted"


def test_hostile_prompt_is_harmless(tmp_path: Path, sim_farm: SimFarm, farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    device = Device(serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    device.run("rm -f /data/local/tmp/pwned", check=True)
    hostile = "$(touch /data/local/tmp/pwned) `touch /data/local/tmp/pwned`; touch /data/local/tmp/pwned\n'\""
    code, _summary = run_json(tmp_path, farm_file, serial, "sdxl-1024", "--prompt", hostile)
    assert code == 0
    assert device.run(["test", "-e", "/data/local/tmp/pwned"]).exit_code == 1
    assert not Path("/data/local/tmp/pwned").exists()


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["run", "nosuchrecipe"], "nosuchrecipe", 2),
        (["run", "sdxl-1024", "--set", "stepz=3"], "did you mean 'steps'", 2),
        (["run", "sdxl-1024", "--set", "steps=many"], "steps", 2),
        (["run", "sdxl-1024", "--set", "vea.env.X=1"], "did you mean 'vae'", 2),
        (["run", "sdxl-1024", "--set", "unet.unset=NOPE"], "sets no NOPE", 2),
        (["run", "sdxl-1024", "-d", "nosuchphone"], "no phone 'nosuchphone'", 3),
        (["run", "sdxl-1024", "-d", "tag:ram8"], "no eligible phone", 3),
    ],
)
def test_bad_input_gets_one_line(tmp_path: Path, sim_farm: SimFarm, farm_file: Path,
                                 args: list[str], message: str, code: int) -> None:
    result = harness(*args, "--farm", str(farm_file), "--db",
                     str(tmp_path / "results.sqlite"), cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_two_runs_on_one_phone_never_overlap(tmp_path: Path, sim_farm: SimFarm,
                                             farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "sdxl-1024", "-d",
                              serial, "--farm", str(farm_file), "--db", str(tmp_path / "a.sqlite"),
                              "--set", "steps=400"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while "UNet step 1/" not in (first.stderr.readline() if first.stderr else ""):
            assert first.poll() is None, "first run ended early"
        second = harness("run", "sdxl-1024", "-d", serial, "--farm", str(farm_file),
                         "--db", str(tmp_path / "b.sqlite"), cwd=tmp_path)
        assert second.returncode == 3
        assert f"{serial}: in use by pid {first.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
