"""The simulated CLML binaries against a virtual phone in a temporary directory.

Most runs call ``pipeline.main`` in-process (fast); the runs that end in a signal (the OOM killer's
SIGKILL, MNN's abort) run the demo wrapper scripts as real processes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from harness.run.blocks import find_image_blocks, find_latent_blocks
from harness.sim import assets, imagegen, pipeline, speed
from tests.simphone import (
    LATENT,
    SD15_ARGS,
    SD15_ENV,
    SD15_WEIGHTS,
    SDXL_WEIGHTS,
    SIM_ENV_VARS,
    TMP,
    UNET_ARGS,
    UNET_ENV,
    VAE_ARGS,
    VAE_ENV,
    TinyPhone,
    make_phone,
)

SD15_OUT = f"{TMP}/output/clml_stable_diffusion_output.qfp32"
SD15_SHAPE = (1, 3, 512, 512)
SDXL_SHAPE = (1, 3, 1024, 1024)
LATENT_SHAPE = (1, 4, 128, 128)
PERF_SD15 = re.compile(r"^\[Perf\] steps=(\d+) total_s=([\d.]+) s/step=([\d.]+)$", re.M)
PERF_UNET = re.compile(r"^\[Perf\] UNet loop_s=([\d.]+) s/step=([\d.]+)$", re.M)
PERF_VAE = re.compile(r"^\[Perf\] iters=1 warmup=0 s/it=([\d.]+)$", re.M)


def found(pattern: re.Pattern[str], text: str) -> re.Match[str]:
    match = pattern.search(text)
    assert match is not None, f"no {pattern.pattern!r} in:\n{text}"
    return match


@pytest.fixture
def phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TinyPhone:
    made = make_phone(tmp_path / "phone")
    for var in SIM_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HARNESS_SIM_ROOT", str(made.root))
    monkeypatch.setenv("HARNESS_SIM_DIR", str(made.ctl))
    monkeypatch.chdir(made.root)
    return made


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], binary: str,
        args: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[int, str, str]:
    with monkeypatch.context() as m:
        for key, value in env.items():
            m.setenv(key, value)
        if cwd is not None:
            m.chdir(cwd)
        code = pipeline.main(binary, args, argv0=f"{TMP}/{binary}")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- clean runs ----------------------------------------------------------------------------

def test_sd15_clean_run(phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(monkeypatch, capsys, "sd15_pipeline_run", SD15_ARGS, SD15_ENV)
    assert code == 0, err
    steps, total, per_step = found(PERF_SD15, out).groups()
    assert int(steps) == 20
    assert float(total) == pytest.approx(9.19277, rel=0.03)
    assert float(per_step) == pytest.approx(float(total) / 20, rel=1e-4)
    image = phone.read(SD15_OUT, SD15_SHAPE)
    assert np.isfinite(image).all() and image.min() >= -1 and image.max() <= 1
    assert not find_image_blocks(image).boxes
    assert phone.state.processes() == []  # unregistered at exit


def test_sdxl_split_unet_then_vae(phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(monkeypatch, capsys, "sdxl_pipeline_run", UNET_ARGS, UNET_ENV)
    assert code == 0, err
    assert re.search(r"^\[Perf\] CLIP ms=[\d.]+$", out, re.M)
    assert re.search(r"^\[Perf\] init_s=[\d.]+$", out, re.M)
    loop_s, per_step = map(float, found(PERF_UNET, out).groups())
    assert per_step == pytest.approx(speed.SDXL_UNET_STEP_S, rel=0.03)
    assert loop_s == pytest.approx(18 * per_step, rel=1e-4)  # k=2: 18 of 20 steps
    latent = phone.read(LATENT, LATENT_SHAPE)
    assert not find_latent_blocks(latent).boxes and np.isfinite(latent).all()

    code, out, err = run(monkeypatch, capsys, "sdxl_vae_decoder_run", VAE_ARGS, VAE_ENV,
                         cwd=phone.tmp)
    assert code == 0, err
    assert float(found(PERF_VAE, out).group(1)) == pytest.approx(
        speed.SDXL_VAE_S, rel=0.05)
    image = phone.read(f"{TMP}/output/sdxl_vae_out.qfp32", SDXL_SHAPE)
    assert np.isfinite(image).all() and not find_image_blocks(image).boxes


def test_outputs_are_deterministic_and_follow_prompt_and_seed(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def sd15(seed: str) -> bytes:
        assert run(monkeypatch, capsys, "sd15_pipeline_run", SD15_ARGS,
                   {**SD15_ENV, "SD15_SEED": seed})[0] == 0
        return phone.host(SD15_OUT).read_bytes()

    first, again, other_seed = sd15("0"), sd15("0"), sd15("7")
    assert first == again
    ids = phone.host(f"{SD15_WEIGHTS}/clip_ids.i32")
    arr = np.fromfile(ids, dtype=np.int32)
    arr[77 + 1] += 11  # change one cond token
    arr.tofile(ids)
    other_prompt = sd15("0")
    for other in (other_seed, other_prompt):
        a = np.frombuffer(first, np.float32)
        b = np.frombuffer(other, np.float32)
        assert np.abs(a - b).mean() > 0.1


def test_speed_factor_and_heat_slow_the_printed_figures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    slow = make_phone(tmp_path / "slow", "sm8475-8g")
    monkeypatch.setenv("HARNESS_SIM_ROOT", str(slow.root))
    monkeypatch.setenv("HARNESS_SIM_DIR", str(slow.ctl))
    out = run(monkeypatch, capsys, "sd15_pipeline_run", SD15_ARGS, SD15_ENV)[1]
    cold = float(found(PERF_SD15, out).group(3))
    assert cold == pytest.approx(speed.SD15_STEP_S * 1.6, rel=0.03)
    slow.state.set_temperature(slow.profile.thermal.max_c + 5)
    out = run(monkeypatch, capsys, "sd15_pipeline_run", SD15_ARGS, SD15_ENV)[1]
    hot = float(found(PERF_SD15, out).group(3))
    assert hot > cold * 1.4


# ---- failure modes -------------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["0", "1", "2", "3"])
def test_sd15_tnn_reuse_paints_colour_blocks_not_nan(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], seed: str) -> None:
    code, out, _ = run(monkeypatch, capsys, "sd15_pipeline_run", SD15_ARGS,
                       {"SD15_SEED": seed})
    assert code == 0 and "tensor reuse (TNN): ON" in out
    image = phone.read(SD15_OUT, SD15_SHAPE)
    assert np.isfinite(image).all()
    assert find_image_blocks(image).found


@pytest.mark.parametrize("seed", ["0", "5"])
def test_sdxl_unet_tnn_reuse_blocks_the_latent_and_the_decoded_image(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], seed: str) -> None:
    args = [*UNET_ARGS[:6], seed, *UNET_ARGS[7:]]
    code, _, err = run(monkeypatch, capsys, "sdxl_pipeline_run", args,
                       {**UNET_ENV, "CLML_NO_REUSE_TNN": "0"})
    assert code == 0, err
    latent = phone.read(LATENT, LATENT_SHAPE)
    assert np.isfinite(latent).all() and find_latent_blocks(latent).found
    code, _, err = run(monkeypatch, capsys, "sdxl_vae_decoder_run", VAE_ARGS, VAE_ENV,
                       cwd=phone.tmp)
    assert code == 0, err
    image = phone.read(f"{TMP}/output/sdxl_vae_out.qfp32", SDXL_SHAPE)
    assert np.isfinite(image).all() and find_image_blocks(image).found


def test_sdxl_vae_tnn_reuse_blocks_the_image(phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(monkeypatch, capsys, "sdxl_pipeline_run", UNET_ARGS, UNET_ENV)[0] == 0
    code, _, err = run(monkeypatch, capsys, "sdxl_vae_decoder_run", VAE_ARGS,
                       {**VAE_ENV, "CLML_NO_REUSE_TNN": "0"}, cwd=phone.tmp)
    assert code == 0, err
    image = phone.read(f"{TMP}/output/sdxl_vae_out.qfp32", SDXL_SHAPE)
    assert np.isfinite(image).all() and find_image_blocks(image).found


@pytest.mark.parametrize(("k", "switch", "blocks"), [
    ("0", None, True), ("0", "SDXL_EXPORT_X0", False), ("2", "SDXL_EARLY_DECODE_X0", False),
])
def test_sdxl_last_step_colour_blocks(phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], k: str,
                                      switch: str | None, blocks: bool) -> None:
    env = {key: v for key, v in UNET_ENV.items() if key != "SDXL_EARLY_DECODE_X0"}
    env["SDXL_EARLY_DECODE_K"] = k
    if switch:
        env[switch] = "1"
    code, out, _ = run(monkeypatch, capsys, "sdxl_pipeline_run", UNET_ARGS, env)
    assert code == 0
    assert f"running {20 - int(k)}/20 steps" in out or k == "0"
    latent = phone.read(LATENT, LATENT_SHAPE)
    assert find_latent_blocks(latent).found is blocks
    assert find_image_blocks(imagegen.decode(latent)).found is blocks


def test_missing_library_path_is_a_link_error(phone: TinyPhone,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    env = {k: v for k, v in UNET_ENV.items() if k != "LD_LIBRARY_PATH"}
    code, _, err = run(monkeypatch, capsys, "sdxl_pipeline_run", UNET_ARGS, env)
    assert code == 1
    assert err.strip() == (f'CANNOT LINK EXECUTABLE "{TMP}/sdxl_pipeline_run": library '
                           '"libMNN.so" not found: needed by main executable')


def test_old_mnn_first_in_library_path_aborts_the_vae(phone: TinyPhone) -> None:
    env = {**VAE_ENV, "LD_LIBRARY_PATH": f"{TMP}:{VAE_ENV['LD_LIBRARY_PATH']}"}
    done = phone.run("sdxl_vae_decoder_run", write_zero_latent(phone), env, cwd=phone.tmp)
    assert done.returncode == -6, done.stderr
    assert "Can't find op type Attention" in done.stderr
    assert f"({TMP}/libMNN.so)" in done.stderr
    assert "Fatal signal 6 (SIGABRT)" in phone.state.logcat_text()
    assert not phone.host(f"{TMP}/output/sdxl_vae_out.qfp32").exists()


def write_zero_latent(phone: TinyPhone) -> list[str]:
    np.zeros(LATENT_SHAPE, np.float32).tofile(phone.host(LATENT))
    return VAE_ARGS


@pytest.mark.parametrize("cwd", ["", "system", "data"])
def test_vae_outside_data_local_tmp_cannot_write_output(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], cwd: str) -> None:
    write_zero_latent(phone)
    code, out, err = run(monkeypatch, capsys, "sdxl_vae_decoder_run", VAE_ARGS, VAE_ENV,
                         cwd=phone.root / cwd)
    assert code == 1
    assert "[Perf] iters=1" in out  # it decoded, then failed to write, as a phone does
    reason = "Permission denied" if cwd == "data" else "Read-only file system"
    assert err.strip() == f"Failed to open output/sdxl_vae_out.qfp32 for writing: {reason}"
    assert not (phone.root / cwd / "output").exists()


APP_KILL = re.compile(r"^\d\d-\d\d [\d:.]+ +587 +587 I lowmemorykiller: Kill "
                      r"'(com\.[\w.]+)' \(\d+\), uid 1\d{4}, oom_score_adj (\d+) to free "
                      r"\d+kB rss, \d+kB swap; reason: \w+ watermark is breached$", re.M)
KERNEL_KILL = re.compile(r"^\[ *\d+\.\d{6}\] Out of memory: Killed process (\d+) "
                         r"\(sdxl_pipeline_r\) total-vm:\d+kB, anon-rss:(\d+)kB, "
                         r"file-rss:(\d+)kB, shmem-rss:0kB, UID:2000 pgtables:\d+kB "
                         r"oom_score_adj:0$", re.M)


def _oom(phone: TinyPhone, env: dict[str, str]) -> None:
    """AOSP's way: lmkd kills the background apps (highest oom_score_adj first), then the
    kernel's OOM killer SIGKILLs the binary, which lmkd never names."""
    done = phone.run("sdxl_pipeline_run", UNET_ARGS, env)
    assert done.returncode == -9, done.stderr
    log = phone.state.logcat_text()
    adjs = [int(m.group(2)) for m in APP_KILL.finditer(log)]
    assert len(adjs) == 5 and adjs == sorted(adjs, reverse=True), log
    assert "sdxl_pipeline" not in log, "lmkd does not know a binary started from adb shell"
    kmsg = phone.state.kmsg_text()
    kill = found(KERNEL_KILL, kmsg)
    rss_kb = int(kill.group(2)) + int(kill.group(3))
    idle = phone.profile.memtotal_kb - phone.profile.reserved_kb
    assert rss_kb > idle, "killed once it held all the phone had, the apps' memory included"
    assert "sdxl_pipeline_r invoked oom-killer:" in kmsg
    assert phone.state.processes() == [], "nothing left running"


def test_vendor_lmkd_profile_names_the_binary(tmp_path: Path) -> None:
    vendor = make_phone(tmp_path / "vendor", oom_killer="lmkd")
    done = vendor.run("sdxl_pipeline_run", UNET_ARGS, {**UNET_ENV, "SDXL_PREINIT": "1"})
    assert done.returncode == -9, done.stderr
    log = vendor.state.logcat_text()
    assert len(APP_KILL.findall(log)) == 5, "apps first, as everywhere"
    assert re.search(r" I lowmemorykiller: Kill 'sdxl_pipeline_r' \(\d+\), uid 2000, "
                     r"oom_score_adj 0 to free \d+kB rss, 0kB swap; reason: min watermark "
                     r"is breached$", log, re.M), log
    assert "Out of memory" not in vendor.state.kmsg_text()


def test_preinit_clip_and_unet_together_oom_on_16gb(phone: TinyPhone) -> None:
    _oom(phone, {**UNET_ENV, "SDXL_PREINIT": "1"})


def test_single_process_sdxl_ooms_on_16gb_but_fits_24gb(phone: TinyPhone,
                                                          tmp_path: Path) -> None:
    single = {k: v for k, v in UNET_ENV.items() if k != "SDXL_UNET_ONLY"}
    _oom(phone, single)
    big = make_phone(tmp_path / "big", "sm8650-24g")
    done = big.run("sdxl_pipeline_run", UNET_ARGS, single)
    assert done.returncode == 0, done.stderr
    image = big.read(f"{TMP}/unused_output.qfp32", SDXL_SHAPE)
    assert np.isfinite(image).all()


def test_sdxl_unet_does_not_fit_12gb(tmp_path: Path) -> None:
    _oom(make_phone(tmp_path / "p12", "sm8550-12g"), UNET_ENV)


@pytest.mark.parametrize(("damage", "message"), [
    ("rm_weights", f"Failed to open {SDXL_WEIGHTS}/weights.idx: No such file or directory"),
    ("truncate_unet", f"Failed to read {SDXL_WEIGHTS}/unet.bin: expected "
                      f"{assets.SDXL_FILES['unet.bin']} bytes, got 1000 (truncated weight "
                      "file?)"),
    ("rm_clip_weight", f"[MNN] Can't open external weight file {TMP}/MNN_clip/"
                       "clip_2_int8.mnn.weight"),
    ("short_ids", f"{TMP}/clip_l_ids.i32: expected 616 bytes (2x77 int32 token ids "
                  "[uncond, cond]), got 612"),
    ("rm_unet", f"Failed to open {SDXL_WEIGHTS}/unet.bin: No such file or directory"),
])
def test_missing_or_damaged_assets(phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str], damage: str,
                                   message: str) -> None:
    if damage == "rm_weights":
        for path in phone.host(SDXL_WEIGHTS).iterdir():
            path.unlink()
        phone.host(SDXL_WEIGHTS).rmdir()
    elif damage == "truncate_unet":
        with phone.host(f"{SDXL_WEIGHTS}/unet.bin").open("r+b") as handle:
            handle.truncate(1000)
    elif damage == "rm_unet":
        phone.host(f"{SDXL_WEIGHTS}/unet.bin").unlink()
    elif damage == "rm_clip_weight":
        phone.host(f"{TMP}/MNN_clip/clip_2_int8.mnn.weight").unlink()
    else:
        path = phone.host(f"{TMP}/clip_l_ids.i32")
        path.write_bytes(path.read_bytes()[:612])
    code, _, err = run(monkeypatch, capsys, "sdxl_pipeline_run", UNET_ARGS, UNET_ENV)
    assert code == 1
    assert err.strip() == message


def test_vae_without_latent_and_wrong_argument_count(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(monkeypatch, capsys, "sdxl_vae_decoder_run", VAE_ARGS, VAE_ENV,
                       cwd=phone.tmp)
    assert code == 1
    assert err.strip() == f"Failed to open {LATENT}: No such file or directory"
    code, _, err = run(monkeypatch, capsys, "sd15_pipeline_run", [SD15_WEIGHTS], SD15_ENV)
    assert code == 1
    assert err.startswith(f"Usage: {TMP}/sd15_pipeline_run <weights_dir> <steps>")
    phone.host(LATENT).write_bytes(b"\0" * 100)
    code, _, err = run(monkeypatch, capsys, "sdxl_vae_decoder_run", VAE_ARGS, VAE_ENV,
                       cwd=phone.tmp)
    assert code == 1 and "Latent size mismatch" in err


def test_precomputed_embeddings_skip_clip(phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    embeds = f"{TMP}/{assets.SDXL_EMBEDS}"
    assert phone.host(f"{embeds}/{assets.TEXT_EMBEDS_NAME}").stat().st_size == \
        pipeline.TEXT_EMBED_BYTES
    env = {**UNET_ENV, "SDXL_TEXT_EMBEDS": f"{embeds}/{assets.TEXT_EMBEDS_NAME}",
           "SDXL_POOLED_EMBEDS": f"{embeds}/{assets.POOLED_EMBEDS_NAME}"}
    phone.host(f"{TMP}/MNN_clip/clip_int8.mnn").unlink()  # not needed any more
    code, out, err = run(monkeypatch, capsys, "sdxl_pipeline_run", UNET_ARGS, env)
    assert code == 0, err
    assert "CLIP skipped" in out and "[Perf] CLIP" not in out


def test_process_is_registered_with_a_proc_status_while_running(phone: TinyPhone) -> None:
    st = phone.state
    st.register_process(4242, "sdxl_pipeline_run", 1000, 1000, 1.0)
    text = st.status_path(4242).read_text()
    assert text.startswith("Name:\tsdxl_pipeline_r\n")
    assert re.search(r"^VmRSS:\s+1000 kB$", text, re.M)


def test_unwritable_output_is_reported(phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    phone.host(SD15_OUT).mkdir(parents=True)  # a directory where the output file goes
    code, _, err = run(monkeypatch, capsys, "sd15_pipeline_run", SD15_ARGS, SD15_ENV)
    assert code == 1
    assert err.strip() == f"Failed to write {SD15_OUT}: Is a directory"


def test_sd15_reads_its_ids_from_the_variable_when_set(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(monkeypatch, capsys, "sd15_pipeline_run", SD15_ARGS, SD15_ENV)[0] == 0
    shipped = phone.host(SD15_OUT).read_bytes()
    ids = np.fromfile(phone.host(f"{SD15_WEIGHTS}/clip_ids.i32"), dtype=np.int32)
    ids[77 + 1] += 11
    ids.tofile(phone.host(f"{TMP}/my_ids.i32"))
    env = {**SD15_ENV, "SD15_CLIP_IDS": f"{TMP}/my_ids.i32"}
    assert run(monkeypatch, capsys, "sd15_pipeline_run", SD15_ARGS, env)[0] == 0
    assert phone.host(SD15_OUT).read_bytes() != shipped
    code, _, err = run(monkeypatch, capsys, "sd15_pipeline_run", SD15_ARGS,
                       {**SD15_ENV, "SD15_CLIP_IDS": f"{TMP}/none.i32"})
    assert code != 0 and f"{TMP}/none.i32" in err


@pytest.mark.parametrize(("style", "init", "loop"), [
    ("seed", "[Perf] init_s=", "[Perf] UNet loop_s="),
    ("words", "[Perf] UNet init_s=", "[Perf] UNet loop_s="),
    ("bare", "[Perf] init_s=", "[Perf] loop_s="),
])
def test_perf_label_words_vary_with_sim_perf_labels(
        phone: TinyPhone, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        style: str, init: str, loop: str) -> None:
    code, out, err = run(monkeypatch, capsys, "sdxl_pipeline_run", UNET_ARGS,
                         {**UNET_ENV, "SIM_PERF_LABELS": style})
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("[Perf]")]
    assert any(ln.startswith(init) for ln in lines), lines
    assert any(ln.startswith(loop) for ln in lines), lines
    assert any(ln.startswith("[Perf] CLIP ms=" if style != "bare" else "[Perf] ms=")
               for ln in lines), lines
