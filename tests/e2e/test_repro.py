"""``harness repro sweep|bisect``, ``harness bundle`` and ``harness replay`` end to end: the
CLI as a subprocess, real adb, virtual phones (small step counts: SDXL is the slow one)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from harness.device.device import AdbEndpoint, Device
from tests.helpers import harness
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e

T, F = "/data/local/tmp", "/data/local/tmp/MNN_fuse"
HARMLESS = ("MNN_POWER=1", "MNN_PREC=2", "OMP_NUM_THREADS=4", "CLML_MNN_ATTN_FP32=0",
            "MNN_MEM=1")


def cli(tmp_path: Path, farm_file: Path, *args: str) -> Any:
    return harness(*args, "--farm", str(farm_file), "--db", str(tmp_path / "results.sqlite"),
                   cwd=tmp_path)


def render(tmp_path: Path, name: str, recipe: str, *pairs: str) -> Path:
    """The plan file `harness recipes render RECIPE --json --set ...` prints (in-process)."""
    from harness.run.runner import RunRequest, build_plan

    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(build_plan(RunRequest(recipe, set_pairs=pairs)).to_dict()))
    return path


def test_sweep_of_early_decode_gives_the_seeds_answer(tmp_path: Path, sim_farm: SimFarm,
                                                      farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    result = cli(tmp_path, farm_file, "repro", "sweep", "sdxl-1024", "-d", serial,
                 "--set", "steps=3", "--sweep", "SDXL_EARLY_DECODE_K=0,2",
                 "--sweep", "SDXL_EARLY_DECODE_X0=0,1", "--json", "sweep.json")
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "sweep.json").read_text())
    verdicts = {(c["settings"]["SDXL_EARLY_DECODE_K"], c["settings"]["SDXL_EARLY_DECODE_X0"]):
                c["verdict"] for c in data["cells"]}
    # The seed: the last step's latent (k=0, no x0) decodes with colour blocks; stopping
    # k=2 steps early and exporting x0 is clean.
    assert verdicts[("0", "0")] == "blocks"
    assert verdicts[("2", "1")] == "clean"
    assert verdicts[("0", "1")] == "clean"
    assert Path(data["sheet"]).is_file() or (tmp_path / data["sheet"]).is_file()
    assert "SDXL_EARLY_DECODE_K" in result.stdout and "blocks" in result.stdout


def test_bisect_finds_tnn_reuse_among_six_switches(tmp_path: Path, sim_farm: SimFarm,
                                                   farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    good = render(tmp_path, "good", "sd15-512")
    bad = render(tmp_path, "bad", "sd15-512", "pipeline.env.CLML_NO_REUSE_TNN=0",
                 *(f"pipeline.env.{h}" for h in HARMLESS))
    result = cli(tmp_path, farm_file, "repro", "bisect", "--good", str(good), "--bad", str(bad),
                 "-d", serial, "--json", "bisect.json")
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "bisect.json").read_text())
    assert len(data["changes"]) == 6
    assert data["answer"] == ["pipeline: CLML_NO_REUSE_TNN=0 (good: 1)"]
    assert data["probe_count"] >= 1
    assert f"{data['probe_count']} probes" in result.stdout
    assert "probe 1:" in result.stdout


def test_bisect_finds_the_library_path_order(tmp_path: Path, sim_farm: SimFarm,
                                             farm_file: Path) -> None:
    from harness.sim.assets import MNN_OPS_OLD, mnn_library

    serial = sim_farm.phone("sm8650-16g").adb_serial
    # The seed's premise: the phone has an older MNN (no Attention op) in /data/local/tmp
    # (other tests may have removed it).
    device = Device(serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    device.push_bytes(mnn_library("libMNN.so", "2.4.0", MNN_OPS_OLD), f"{T}/libMNN.so")
    good = render(tmp_path, "good", "sdxl-1024", "steps=3",
                  f"unet.env.LD_LIBRARY_PATH={F}:/system/lib64:/vendor/lib64:{T}")
    bad = render(tmp_path, "bad", "sdxl-1024", "steps=3",
                 f"unet.env.LD_LIBRARY_PATH={T}:{F}:/vendor/lib64:/system/lib64:/vendor/lib64/egl",
                 f"vae.env.LD_LIBRARY_PATH={F}:/vendor/lib64:/system/lib64")
    result = cli(tmp_path, farm_file, "repro", "bisect", "--good", str(good), "--bad", str(bad),
                 "-d", serial, "--json", "-")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["changes"]) == 4
    assert data["answer"] == ["unet: LD_LIBRARY_PATH moves /data/local/tmp first"]
    assert data["probe_count"] >= 1 and data["runs"] >= 1


@pytest.fixture(scope="module")
def sdxl_bundle(tmp_path_factory: pytest.TempPathFactory, sim_farm: SimFarm) -> Path:
    """A bundle of an SDXL 1024 run on the 16 GB phone (3 steps)."""
    tmp_path = tmp_path_factory.mktemp("bundle")
    farm = tmp_path / "farm.yaml"
    farm.write_text(f"servers: [{{name: virtual, port: {sim_farm.state.adb_port}}}]\n"
                    "sim: false\nthermal: {battery_c: 90, cpu_c: 110}\n")
    big = sim_farm.phone("sm8650-16g").adb_serial
    run = cli(tmp_path, farm, "run", "sdxl-1024", "-d", big, "--set", "steps=3", "--json")
    assert run.returncode == 0, run.stderr
    run_id = json.loads(run.stdout)["run_id"]
    made = harness("bundle", run_id, "-o", str(tmp_path / "b.tar.gz"), "--db",
                   str(tmp_path / "results.sqlite"), "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["manifest"]["run"]["id"] == run_id
    return tmp_path / "b.tar.gz"


def test_replay_of_a_16gb_run_on_an_8gb_phone_shows_the_oom(tmp_path: Path, sim_farm: SimFarm,
                                                            farm_file: Path,
                                                            sdxl_bundle: Path) -> None:
    small = sim_farm.phone("sm8475-8g").adb_serial
    with tarfile.open(sdxl_bundle) as tar:
        names = set(tar.getnames())
    assert {"manifest.json", "README.md", "plan.json", "run.sh", "assets.json",
            "verdicts.json", "device.json", "run/vae-image.png", "run/00-unet.stdout",
            "run/01-vae.perf.json"} <= names
    result = cli(tmp_path, farm_file, "replay", str(sdxl_bundle), "-d", small, "--json")
    assert result.returncode == 5, result.stderr
    data = json.loads(result.stdout)
    assert data["original"]["verdict"] == "clean" and data["original"]["ram"].startswith("16 GB")
    assert data["original"]["exit_codes"] == {"unet": 0, "vae": 0}
    assert data["replay"]["verdict"] == "oom" and data["replay"]["ram"].startswith("8 GB")
    assert data["replay"]["exit_codes"]["unet"] == 137
    assert data["original"]["metrics"]["unet.unet.s/step"] > 0
    assert "8 GB of RAM" in result.stderr


def test_replay_refuses_other_local_assets(tmp_path: Path, sim_farm: SimFarm,
                                           farm_file: Path, sdxl_bundle: Path) -> None:
    from tests.unit.repro.test_bundle import _rewrite_assets

    small = sim_farm.phone("sm8475-8g").adb_serial
    # A bundle whose run used other weights: its digests are not this host's or the phone's.
    other = _rewrite_assets(sdxl_bundle, tmp_path / "other.tar.gz")
    result = cli(tmp_path, farm_file, "replay", str(other), "-d", small)
    assert result.returncode == 1, result.stderr
    assert "differs from the bundle's" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "logs").exists()  # refused before anything ran


def test_hostile_sweep_value_is_harmless(tmp_path: Path, sim_farm: SimFarm,
                                         farm_file: Path) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    device = Device(serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    device.run("rm -f /data/local/tmp/pwned-sweep", check=True)
    hostile = "$(touch /data/local/tmp/pwned-sweep);`touch /data/local/tmp/pwned-sweep`"
    result = cli(tmp_path, farm_file, "repro", "sweep", "sd15-512", "-d", serial,
                 "--sweep", f"pipeline.env.HOSTILE={hostile}", "--json", "-")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cells"][0]["settings"]["pipeline.env.HOSTILE"] == hostile
    assert device.run(["test", "-e", "/data/local/tmp/pwned-sweep"]).exit_code == 1
