"""Builds of the simulated binaries, phone OS updates and the run-to-run noise model."""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics
from pathlib import Path

import numpy as np
import pytest

from harness.bench.quality import compare_output
from harness.run.blocks import find_image_blocks
from harness.sim import assets, builds, devtools, imagegen, pipeline, speed
from harness.sim.errors import SimError
from harness.sim.osupdate import os_update
from tests.simphone import SD15_ARGS, SD15_ENV, SIM_ENV_VARS, TMP, TinyPhone, make_phone

PERF_SD15 = re.compile(r"^\[Perf\] steps=20 total_s=([\d.]+) s/step=([\d.]+)$", re.M)
SD15_OUT = f"{TMP}/output/clml_stable_diffusion_output.qfp32"


@pytest.fixture
def phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TinyPhone:
    made = make_phone(tmp_path / "phone")
    for var in SIM_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HARNESS_SIM_ROOT", str(made.root))
    monkeypatch.setenv("HARNESS_SIM_DIR", str(made.ctl))
    monkeypatch.chdir(made.root)
    return made


def sd15(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         build: dict[str, object] | None = None, seed: str = "3") -> float:
    with monkeypatch.context() as m:
        for key, value in {**SD15_ENV, "SD15_SEED": seed}.items():
            m.setenv(key, value)
        code = pipeline.main("sd15_pipeline_run", SD15_ARGS, argv0=f"{TMP}/sd15_pipeline_run",
                             build=build)
    out = capsys.readouterr().out
    assert code == 0, out
    match = PERF_SD15.search(out)
    assert match is not None, out
    return float(match.group(1))


def test_another_build_is_another_file(tmp_path: Path) -> None:
    demo = assets.demo_files()["sd15_pipeline_run"][0]
    written = builds.write_build(tmp_path, builds.Build(speed=1.05),
                                 ["sd15_pipeline_run"])
    assert written == [tmp_path / "sd15_pipeline_run"]
    data = written[0].read_bytes()
    assert hashlib.sha256(data).digest() != hashlib.sha256(demo).digest()
    assert b"'speed': 1.05" in data and written[0].stat().st_mode & 0o777 == 0o755
    relabelled = builds.write_build(tmp_path / "b", builds.Build(label="n2"))
    assert [p.name for p in relabelled] == list(assets.BINARIES)
    assert relabelled[0].read_bytes() != demo
    with pytest.raises(builds.BuildError, match="unknown binary nope"):
        builds.write_build(tmp_path, builds.Build(), ["nope"])
    with pytest.raises(builds.BuildError, match="positive"):
        builds.Build(speed=0.0)


def test_the_demo_binary_carries_the_default_build(phone: TinyPhone) -> None:
    text = (phone.tmp / "sd15_pipeline_run").read_text()
    assert "BUILD = {'speed': 1.0, 'tnn_reuse': False, 'label': ''}" in text
    assert "build=BUILD" in text


def test_a_slower_build_prints_slower_figures(phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    base = statistics.median(sd15(monkeypatch, capsys) for _ in range(3))
    slow = statistics.median(sd15(monkeypatch, capsys, {"speed": 1.05}) for _ in range(3))
    assert slow / base == pytest.approx(1.05, abs=0.01)


def test_a_bad_build_fails_with_a_message(phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = pipeline.main("sd15_pipeline_run", SD15_ARGS, argv0="x", build={"speed": "fast"})
    assert code == 1 and "bad build" in capsys.readouterr().err


def test_a_tnn_reuse_build_drifts_without_colour_blocks(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    sd15(monkeypatch, capsys)
    clean = phone.read(SD15_OUT, (1, 3, 512, 512))
    sd15(monkeypatch, capsys)
    assert np.array_equal(phone.read(SD15_OUT, (1, 3, 512, 512)), clean), "deterministic"
    sd15(monkeypatch, capsys, {"tnn_reuse": True})
    drifted = phone.read(SD15_OUT, (1, 3, 512, 512))
    assert np.isfinite(drifted).all()
    assert not find_image_blocks(drifted).found
    result = compare_output(imagegen.to_rgb8(clean), imagegen.to_rgb8(drifted))
    assert result.verdict == "quality", result


def test_vae_numeric_drift_is_seen_by_psnr_or_ssim() -> None:
    ids = np.arange(154, dtype=np.int32).reshape(2, 77)
    image = imagegen.decode(imagegen.synth_latent(ids, 1, 20, 7.5, 256, 256))
    drifted = pipeline.build_drift(image, b"k", 0, "image")
    assert not find_image_blocks(drifted).found
    assert compare_output(imagegen.to_rgb8(image), imagegen.to_rgb8(drifted)).verdict == "quality"


def test_noise_offsets_are_fixed_per_boot_and_session() -> None:
    noise = speed.REALISTIC
    one = speed.offsets(noise, "s1", 100.0, "night-1")
    assert one == speed.offsets(noise, "s1", 100.0, "night-1")
    nights = [speed.offsets(noise, "s1", 100.0, f"night-{i}") for i in range(400)]
    assert one != speed.offsets(noise, "s2", 100.0, "night-1"), "each phone its own"
    sigma = float(np.std(np.log(nights)))
    assert sigma == pytest.approx(noise.session_sigma, rel=0.15)
    per_boot = [speed.offsets(noise, "s1", float(b), "n") for b in range(400)]
    both = float(np.std(np.log(per_boot)))
    assert both == pytest.approx(np.hypot(noise.boot_sigma, noise.session_sigma), rel=0.15)
    assert speed.offsets(speed.QUIET, "s1", 1.0, "x") == 1.0


def test_run_levels_have_jitter_and_outliers() -> None:
    rng = random.Random(5)
    levels = np.array([speed.run_level(speed.REALISTIC, rng) for _ in range(5000)])
    outliers = levels > 1.0 + speed.REALISTIC.outlier_low * 0.99 + 0.04
    assert outliers.mean() == pytest.approx(speed.REALISTIC.outlier_rate, abs=0.008)
    inliers = np.log(levels[levels < 1.04])
    assert float(inliers.std()) == pytest.approx(speed.REALISTIC.run_sigma, rel=0.15)
    assert speed.run_level(speed.QUIET, rng) == 1.0


def test_noise_and_session_files(tmp_path: Path) -> None:
    assert speed.load_noise(tmp_path) == speed.QUIET
    speed.set_noise(tmp_path, speed.REALISTIC)
    assert speed.load_noise(tmp_path) == speed.REALISTIC
    (tmp_path / speed.NOISE_FILE).write_text("{broken")
    assert speed.load_noise(tmp_path) == speed.QUIET
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", speed.session_key(tmp_path))
    speed.set_session(tmp_path, "night-7")
    assert speed.session_key(tmp_path) == "night-7"


def test_a_realistic_phone_varies_between_nights(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    speed.set_noise(phone.ctl, speed.NoiseModel(session_sigma=0.05))
    speed.set_session(phone.ctl, "a")
    night_a = sd15(monkeypatch, capsys)
    assert sd15(monkeypatch, capsys) == pytest.approx(night_a, rel=0.01)
    speed.set_session(phone.ctl, "b")
    expected = (speed.offsets(speed.NoiseModel(session_sigma=0.05), phone.state.serial,
                              phone.state.meta["boot_wall"], "b")
                / speed.offsets(speed.NoiseModel(session_sigma=0.05), phone.state.serial,
                                phone.state.meta["boot_wall"], "a"))
    assert sd15(monkeypatch, capsys) / night_a == pytest.approx(expected, rel=0.01)


def test_an_os_update_changes_the_fingerprint_and_the_speed(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = sd15(monkeypatch, capsys)
    old_boot = phone.state.meta["boot_wall"]
    done = os_update(phone.ctl, phone.root, speed=1.1)
    assert done.before == phone.profile.fingerprint() != done.after
    assert done.after.endswith("/S9280ZCS2AXE2:user/release-keys"), done.after
    prop = (phone.root / devtools.BUILD_PROP).read_text()
    assert f"ro.build.fingerprint={done.after}" in prop
    meta = json.loads((phone.ctl / "profile.json").read_text())
    assert meta["boot_wall"] != old_boot and meta["profile"]["speed_factor"] == 1.1
    assert sd15(monkeypatch, capsys) / before == pytest.approx(1.1, abs=0.01)
    assert os_update(phone.ctl, phone.root, build_id="AP2A.1").after.split("/")[3] == "AP2A.1"
    with pytest.raises(SimError, match="would not change"):
        os_update(phone.ctl, phone.root, incremental=json.loads(
            (phone.ctl / "profile.json").read_text())["profile"]["build_incremental"])
