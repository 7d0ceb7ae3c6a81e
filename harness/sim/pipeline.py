"""The simulated Snapdragon CLML binaries: ``sd15_pipeline_run``, ``sdxl_pipeline_run`` and
``sdxl_vae_decoder_run``, with the seed's arguments, environment, outputs, ``[Perf]`` lines
and failure modes (seeds/002; restated in docs as seed-facts).

Printed figures are simulated seconds (the seed's timings x the profile's ``speed_factor`` x
the throttle factor x ~1 % jitter x this run's level); the process sleeps them x the phone's
``time_scale``, one chunk (e.g. a step) at a time, heating the phone as it goes. The level is
the binary's own build speed (its wrapper script's ``BUILD``, :mod:`harness.sim.builds`) x
the phone's run-to-run noise (:class:`harness.sim.speed.NoiseModel`: boot, session and run
offsets, outliers; none unless set). A build with ``tnn_reuse`` adds small numeric drift
to its output even with ``CLML_NO_REUSE_TNN=1``.

Assumptions where the seed is silent (the seed wins if it ever says otherwise):

- ``sd15_pipeline_run <weights_dir> <steps>`` takes no prompt: it reads token ids (2x77
  int32 ``[uncond, cond]``) from the file ``SD15_CLIP_IDS`` names, else from
  ``<weights_dir>/clip_ids.i32`` (shipped with the weights as the seed's asset-prepare
  script does), the seed from ``SD15_SEED`` (default 0), and uses a guidance scale of 7.5
  and 512x512. Both variables are harness conventions (sd15-512's ``clip_ids_env`` and
  ``seed_env`` parameters).
- ``SIM_PERF_LABELS`` (simulation only) changes the label words of ``[Perf]`` lines as
  binaries written by someone else do: ``seed`` (default) prints the seed's lines,
  ``words`` puts the process's label before every figure (``[Perf] UNet init_s=...``,
  ``[Perf] SD15 steps=...``), ``bare`` prints no label words (``[Perf] loop_s=...``).
- ``sdxl_vae_decoder_run <weights> <iters> <warmup> <a3> <a4> <latent_h> <latent_w> <a7>
  <latent>``: the seed names only the latent; ``iters``/``warmup`` are what its ``[Perf]``
  line reports, then the latent size (128 for 1024x1024); ``a3``, ``a4``, ``a7`` (``1 0.1 1``
  in the seed) must be numbers and are otherwise unused.
- ``SDXL_PREINIT=1`` is a simulation-only switch standing for the seed's "pre-initialisation":
  the UNet is initialised before CLIP runs, so CLIP and the UNet are resident together.
- Without ``SDXL_UNET_ONLY=1`` the SDXL binary decodes in-process (the UNet is not fully
  released) and writes the image to its last argument. With it, ``SDXL_LATENT_OUT`` is
  required (the last argument is unused, as the seed's ``unused_output.qfp32`` says).
- Colour blocks appear when the UNet runs the last step and exports ``x_t`` (``k = 0``
  without ``SDXL_EARLY_DECODE_X0``/``SDXL_EXPORT_X0``); stopping early without x0 leaves some
  residual noise; ``CLML_NO_REUSE_TNN`` other than ``1`` adds colour blocks (flat tiles;
  UNet: in the latent, VAE: in the image, SD1.5: either), never NaN.
- The VAE always runs MNN's Attention op and needs it in the loaded ``libMNN.so``; the SDXL
  UNet needs it only when ``CLML_MNN_ATTN_BACKEND`` is set. ``libMNN_CL.so`` (from
  ``MNN_CL_LIB``, else the library path) is needed when that backend is ``opencl``.
- The VAE writes ``output/`` relative to its working directory, which must be one a shell
  user can write (``/data/local/tmp`` and below, ``/sdcard``); elsewhere it fails as a phone
  would, after decoding.
"""

# ruff: noqa: E402 - the thread limits must be set before numpy is imported
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the host has few cores and many phones

# The imports below follow the thread limits on purpose: numpy reads them when it loads.
import contextlib
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harness.sim import assets, builds, imagegen, paths, speed
from harness.sim.apps import oom_kill_lines
from harness.sim.devtools import ELF_MAGIC, ELF_MIN_BYTES
from harness.sim.paths import ctl_dir, device_path, strip_root
from harness.sim.state import LMKD_PID, SHELL_UID, VM_NOT_RESIDENT_KB, PhoneState

SD15_OUTPUT = "/data/local/tmp/output/clml_stable_diffusion_output.qfp32"
VAE_OUTPUT_REL = "output/sdxl_vae_out.qfp32"
DEFAULT_LIB_DIRS = ("/system/lib64", "/vendor/lib64")  # the linker's default search path
SD15_GUIDANCE = 7.5
SD15_SIZE_PX = 512
TEXT_EMBED_BYTES = 4 * 2 * 77 * 2048  # float32 (2, 77, 2048): [uncond, cond] x tokens x dim
POOLED_EMBED_BYTES = 4 * 2 * 1280  # float32 (2, 1280)
RESIDUAL_NOISE_PER_STEP = 1.5  # x_t noise left per skipped step, relative to steps


class Exit(Exception):
    """End the binary: print ``message`` on stderr and exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def out(msg: str) -> None:
    print(msg, flush=True)


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fmt(x: float) -> str:
    """Numbers as the binaries print them (C++ iostream default: 6 significant digits)."""
    return f"{x:.6g}"


PERF_LABEL_STYLES = ("seed", "words", "bare")


def perf(label: str, pairs: str, seed_label: bool = True) -> None:
    """Print a ``[Perf]`` line; ``seed_label``: the seed's own line carries ``label``."""
    style = os.environ.get("SIM_PERF_LABELS") or "seed"
    if style not in PERF_LABEL_STYLES:
        raise Exit(f"Unknown SIM_PERF_LABELS '{style}' (expected "
                   f"{', '.join(PERF_LABEL_STYLES)})")
    shown = {"seed": label if seed_label else "", "words": label, "bare": ""}[style]
    out(f"[Perf] {shown} {pairs}" if shown else f"[Perf] {pairs}")


def env_flag(name: str) -> bool:
    return os.environ.get(name) == "1"


def env_path(name: str) -> str | None:
    """A path-valued variable, as the phone's shell set it (device paths)."""
    value = os.environ.get(name)
    return strip_root(value) if value else None


@dataclass
class Phone:
    """The running binary's view of its phone: time, heat, memory."""

    name: str
    argv0: str
    state: PhoneState
    pid: int
    jitter: random.Random
    build: builds.Build = builds.DEFAULT
    level: float = 1.0  # this run's build speed x the phone's noise (speed.NoiseModel)

    def spend(self, base_s: float, power_w: float) -> float:
        """Work for ``base_s`` reference seconds; return the simulated seconds it took."""
        factor = self.state.profile.speed_factor * self.state.throttle_factor() * self.level
        sim_s = base_s * factor * speed.chunk_noise(self.jitter)
        time.sleep(sim_s * speed.wall_scale(self.state.time_scale))
        self.state.add_heat(sim_s, power_w)
        return sim_s

    def spend_chunks(self, base_s: float, power_w: float, chunks: int) -> float:
        return sum(self.spend(base_s / chunks, power_w) for _ in range(chunks))

    def footprint(self, rss_kb: int, power_w: float) -> None:
        """Grow to ``rss_kb``. lmkd kills background apps first (:mod:`harness.sim.apps`);
        when there is still no room the process dies of SIGKILL: by default the kernel's OOM
        killer (lmkd does not know a binary started from ``adb shell``; the reason goes to the
        kernel log only), with ``oom_killer: lmkd`` in the profile a vendor lmkd that names
        the binary in logcat."""
        grant = self.state.request_memory(self.pid, self.name, rss_kb, power_w)
        if grant.granted:
            return
        if self.state.profile.oom_killer == "lmkd":
            self.state.logcat_append(
                "lowmemorykiller", "I",
                f"Kill '{self.name[:15]}' ({self.pid}), uid {SHELL_UID}, oom_score_adj 0 to "
                f"free {grant.rss_kb}kB rss, 0kB swap; reason: min watermark is breached",
                LMKD_PID)
        else:
            vm_kb = grant.rss_kb + VM_NOT_RESIDENT_KB
            self.state.kmsg_append(oom_kill_lines(self.name, self.pid, grant.rss_kb, vm_kb,
                                                  SHELL_UID))
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(self.pid, signal.SIGKILL)
        time.sleep(60)  # pragma: no cover - SIGKILL is not deliverable late

    def abort(self, message: str) -> None:
        """Die of SIGABRT as a C++ binary whose library calls abort() (no core file)."""
        comm = self.name[:15]
        fingerprint = self.state.profile.fingerprint()
        self.state.logcat_append("libc", "F", f"Fatal signal 6 (SIGABRT), code -1 (SI_QUEUE) "
                                 f"in tid {self.pid} ({comm}), pid {self.pid} ({comm})",
                                 self.pid)
        for line in ("*** *** *** *** *** *** *** *** *** *** *** *** *** *** *** ***",
                     f"Build fingerprint: '{fingerprint}'",
                     f"pid: {self.pid}, tid: {self.pid}, name: {comm}  >>> {self.argv0} <<<",
                     "signal 6 (SIGABRT), code -1 (SI_QUEUE), fault addr --------",
                     f"Abort message: '{message}'"):
            self.state.logcat_append("DEBUG", "F", line, self.pid + 7)
        sys.stdout.flush()
        sys.stderr.flush()
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGABRT, signal.SIG_DFL)
        os.kill(self.pid, signal.SIGABRT)
        time.sleep(60)  # pragma: no cover


# ---- arguments, files and libraries -----------------------------------------------------

def parse_int(text: str, what: str, minimum: int | None = None) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise Exit(f"Invalid {what}: '{text}'") from None
    if minimum is not None and value < minimum:
        raise Exit(f"Invalid {what}: {value} (must be >= {minimum})")
    return value


def parse_float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise Exit(f"Invalid {what}: '{text}'") from None


def find_library(name: str) -> tuple[str, Path] | None:
    """Resolve ``name`` as the Android linker does: LD_LIBRARY_PATH, then the defaults."""
    dirs = [d for d in (env_path("LD_LIBRARY_PATH") or "").split(":") if d]
    for directory in (*dirs, *DEFAULT_LIB_DIRS):
        host = device_path(directory) / name
        if host.is_file():
            return f"{directory.rstrip('/')}/{name}", host
    return None


def load_library(argv0: str, shown: str, host: Path) -> bytes:
    data = host.read_bytes()
    if len(data) < ELF_MIN_BYTES:
        raise Exit(f'CANNOT LINK EXECUTABLE "{argv0}": "{shown}" is too small to be an ELF '
                   f"executable: only found {len(data)} bytes")
    if not data.startswith(ELF_MAGIC):
        raise Exit(f'CANNOT LINK EXECUTABLE "{argv0}": "{shown}" has bad ELF magic: '
                   f"{data[:4].hex()}")
    return data


def link(argv0: str, needed: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
    """Load the executable's DT_NEEDED libraries or fail as the linker does."""
    loaded = {}
    for name in needed:
        found = find_library(name)
        if found is None:
            raise Exit(f'CANNOT LINK EXECUTABLE "{argv0}": library "{name}" not found: '
                       "needed by main executable")
        shown, host = found
        loaded[name] = (shown, load_library(argv0, shown, host))
    return loaded


def load_mnn_cl(argv0: str) -> tuple[str, bytes]:
    """dlopen libMNN_CL.so as MNN does: ``MNN_CL_LIB`` if set, else by name."""
    explicit = env_path("MNN_CL_LIB")
    found = (explicit, device_path(explicit)) if explicit else find_library("libMNN_CL.so")
    if found is None or not found[1].is_file():
        name = explicit or "libMNN_CL.so"
        raise Exit(f'[MNN] dlopen {name} failed: dlopen failed: library "{name}" not found\n'
                   "[MNN] OpenCL backend is not available")
    return found[0], load_library(argv0, *found)


def attention_backend() -> str | None:
    backend = os.environ.get("CLML_MNN_ATTN_BACKEND")
    if backend not in (None, "opencl", "cpu"):
        raise Exit(f"Unknown CLML_MNN_ATTN_BACKEND '{backend}' (expected opencl or cpu)")
    return backend


def need_attention(phone: Phone, libs: dict[str, tuple[str, bytes]], backend: str) -> None:
    """Create MNN's Attention op; an MNN without it aborts."""
    shown, data = libs["libMNN.so"]
    out(f"[MNN] libMNN.so loaded from {shown}")
    if "Attention" not in assets.library_ops(data):
        err(f"[MNN] Error: Can't find op type Attention (op 'attn_0') in the loaded "
            f"libMNN.so ({shown})")
        err("[MNN] Create module failed")
        phone.abort("MNN: Can't find op type Attention")
    if backend == "opencl":
        cl_shown, cl_data = libs["libMNN_CL.so"]
        if "Attention" not in assets.library_ops(cl_data):
            err(f"[MNN] Error: OpenCL backend ({cl_shown}) has no Attention kernel")
            phone.abort("MNN: no OpenCL Attention kernel")
    out(f"[MNN] Attention host op ready (backend={backend}, "
        f"fp32={os.environ.get('CLML_MNN_ATTN_FP32', '0')})")


def write_array(host: Path, shown: str, array: npt.NDArray[np.float32]) -> None:
    try:
        host.parent.mkdir(parents=True, exist_ok=True)
        with host.open("wb") as handle:
            handle.write(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    except OSError as exc:
        raise Exit(f"Failed to write {shown}: {exc.strerror}") from None


def tnn_reuse() -> bool:
    reuse = not env_flag("CLML_NO_REUSE_TNN")
    out("[CLML] tensor reuse (TNN): " + ("ON" if reuse else "off (CLML_NO_REUSE_TNN=1)"))
    return reuse


def bytes_key(data: bytes) -> bytes:
    return imagegen.prompt_key(np.frombuffer(data[: len(data) // 4 * 4], dtype=np.int32))


def drift(latent: npt.NDArray[np.float32], key: bytes, seed: int) -> npt.NDArray[np.float32]:
    """Reused TNN in the UNet: flat colour blocks in the latent (never NaN; seed: "colour
    blocks / garbage"); in the VAE (:func:`decode_drift`): flat tiles in the image."""
    return imagegen.colour_blocks(latent, imagegen.rng_for(b"tnn-reuse", key, seed))


def decode_drift(image: npt.NDArray[np.float32], key: bytes, seed: int) -> npt.NDArray[np.float32]:
    return imagegen.image_blocks(image, imagegen.rng_for(b"tnn-reuse-vae", key, seed))


def build_drift(x: npt.NDArray[np.float32], key: bytes, seed: int,
                kind: str) -> npt.NDArray[np.float32]:
    """A build that reuses TNN buffers despite ``CLML_NO_REUSE_TNN=1``: small numeric
    drift (:func:`harness.sim.builds.numeric_drift`), the same for the same inputs."""
    return builds.numeric_drift(x, imagegen.rng_for(b"tnn-build", key, seed), kind)


def banner(phone: Phone, title: str) -> None:
    profile = phone.state.profile
    out(f"[{title}] pid {phone.pid} on {profile.model} ({profile.soc_model})")
    out(f"[CLML] OpenCL platform: QUALCOMM Snapdragon(TM), device: QUALCOMM {profile.gpu}, "
        "CLML 3.0")


# ---- sd15_pipeline_run ---------------------------------------------------------------------

def run_sd15(phone: Phone, argv: list[str]) -> int:
    link(phone.argv0, ("libOpenCL.so", "libc++.so", "liblog.so"))
    if len(argv) != 2:
        raise Exit(f"Usage: {phone.argv0} <weights_dir> <steps>")
    weights_shown, steps = argv[0], parse_int(argv[1], "steps", 1)
    seed = parse_int(os.environ.get("SD15_SEED", "0"), "SD15_SEED")
    banner(phone, "SD15")
    reuse = tnn_reuse()
    weights = device_path(weights_shown)
    assets.verify_weights(weights, weights_shown, "sd15", list(assets.SD15_FILES))
    ids_shown = env_path("SD15_CLIP_IDS") or f"{weights_shown}/{assets.CLIP_IDS_NAME}"
    ids = assets.read_token_ids(device_path(ids_shown), ids_shown)
    phone.footprint(speed.SD15_INIT_RSS_KB, speed.INIT_POWER_W)
    for name in assets.SD15_FILES:
        out(f"[SD15] loading {weights_shown}/{name}")
    init_s = phone.spend_chunks(speed.SD15_INIT_S, speed.INIT_POWER_W, speed.INIT_CHUNKS)
    out(f"[SD15] init done in {init_s:.3f} s")
    phone.footprint(speed.SD15_RUN_RSS_KB, speed.SD15_STEP_POWER_W)
    clip_s = phone.spend(speed.SD15_CLIP_S, speed.SD15_STEP_POWER_W)
    out(f"[SD15] text encoder {clip_s * 1000:.1f} ms (seed {seed}, guidance {SD15_GUIDANCE})")
    total = 0.0
    for step in range(1, steps + 1):
        step_s = phone.spend(speed.SD15_STEP_S, speed.SD15_STEP_POWER_W)
        total += step_s
        out(f"[SD15] step {step}/{steps} {step_s:.4f} s")
    perf("SD15", f"steps={steps} total_s={fmt(total)} s/step={fmt(total / steps)}", False)
    latent = imagegen.synth_latent(ids, seed, steps, SD15_GUIDANCE, SD15_SIZE_PX, SD15_SIZE_PX)
    key = imagegen.prompt_key(ids)
    in_unet = imagegen.rng_for(b"tnn-where", key, seed).random() < 0.5  # UNet's or VAE's TNN
    if reuse and in_unet:
        latent = drift(latent, key, seed)
    if phone.build.tnn_reuse and not reuse:
        latent = build_drift(latent, key, seed, "latent")
    vae_s = phone.spend(speed.SD15_VAE_S, speed.VAE_POWER_W)
    out(f"[SD15] VAE decode {vae_s:.3f} s")
    image = imagegen.decode(latent)
    if reuse and not in_unet:
        image = decode_drift(image, key, seed)
    write_array(device_path(SD15_OUTPUT), SD15_OUTPUT, image)
    out(f"[SD15] saved {SD15_OUTPUT} (1x3x{SD15_SIZE_PX}x{SD15_SIZE_PX} float32)")
    return 0


# ---- sdxl_pipeline_run ---------------------------------------------------------------------

@dataclass(frozen=True)
class SdxlArgs:
    weights: str
    clip_dir: str
    ids_l: str
    ids_g: str
    steps: int
    guidance: float
    seed: int
    height: int
    width: int
    output: str


@dataclass(frozen=True)
class SdxlSwitches:
    unet_only: bool
    preinit: bool
    k: int
    x0: bool
    latent_out: str | None
    backend: str | None


def sdxl_args(phone: Phone, argv: list[str]) -> tuple[SdxlArgs, SdxlSwitches]:
    if len(argv) != 10:
        raise Exit(f"Usage: {phone.argv0} <weights_dir> <mnn_clip_dir> <clip_l_ids.i32> "
                   "<clip_g_ids.i32> <steps> <guidance> <seed> <height> <width> <output>")
    a = SdxlArgs(argv[0], argv[1], argv[2], argv[3], parse_int(argv[4], "steps", 1),
                 parse_float(argv[5], "guidance"), parse_int(argv[6], "seed"),
                 parse_int(argv[7], "height", 8), parse_int(argv[8], "width", 8), argv[9])
    k = parse_int(os.environ.get("SDXL_EARLY_DECODE_K") or "0", "SDXL_EARLY_DECODE_K", 0)
    sw = SdxlSwitches(env_flag("SDXL_UNET_ONLY"), env_flag("SDXL_PREINIT"), k,
                      env_flag("SDXL_EARLY_DECODE_X0") or env_flag("SDXL_EXPORT_X0"),
                      env_path("SDXL_LATENT_OUT"), attention_backend())
    if k >= a.steps:
        raise Exit(f"SDXL_EARLY_DECODE_K={k} must be smaller than steps={a.steps}")
    if sw.unet_only and not sw.latent_out:
        raise Exit("SDXL_UNET_ONLY=1 needs SDXL_LATENT_OUT (where to write the latent)")
    return a, sw


def sdxl_conditioning(a: SdxlArgs) -> tuple[npt.NDArray[np.int32], bool]:
    """Token ids, or a digest of precomputed embeddings; and whether CLIP must run."""
    text, pooled = env_path("SDXL_TEXT_EMBEDS"), env_path("SDXL_POOLED_EMBEDS")
    if bool(text) != bool(pooled):
        raise Exit("SDXL_TEXT_EMBEDS and SDXL_POOLED_EMBEDS must be set together")
    if text and pooled:
        digest = b""
        for shown, size in ((text, TEXT_EMBED_BYTES), (pooled, POOLED_EMBED_BYTES)):
            try:
                data = device_path(shown).read_bytes()
            except OSError:
                raise Exit(f"Failed to open {shown}: No such file or directory") from None
            if len(data) != size:
                raise Exit(f"{shown}: expected {size} bytes of float32 embeddings, "
                           f"got {len(data)}")
            digest += bytes_key(data)
        out("[SDXL] using precomputed embeddings: CLIP skipped")
        return np.frombuffer(digest, dtype=np.int32).copy(), False
    assets.verify_clip(device_path(a.clip_dir), a.clip_dir)
    ids_l = assets.read_token_ids(device_path(a.ids_l), a.ids_l)
    ids_g = assets.read_token_ids(device_path(a.ids_g), a.ids_g)
    return np.concatenate([ids_l.ravel(), ids_g.ravel()]).astype(np.int32), True


def run_sdxl(phone: Phone, argv: list[str]) -> int:
    libs = link(phone.argv0, ("libMNN.so", "libMNN_Express.so", "libOpenCL.so", "libc++.so"))
    a, sw = sdxl_args(phone, argv)
    banner(phone, "SDXL")
    reuse = tnn_reuse()
    names = ["unet.bin"] + ([] if sw.unet_only else ["vae_decoder.bin"])
    index = assets.verify_weights(device_path(a.weights), a.weights, "sdxl", names)
    if (a.height, a.width) != (index.height, index.width):
        raise Exit(f"[SDXL] unsupported resolution {a.width}x{a.height}: the CLML UNet was "
                   f"compiled for {index.width}x{index.height}")
    if sw.backend is not None or not sw.unet_only:  # the in-process VAE needs Attention too
        backend = sw.backend or "cpu"
        if backend == "opencl":
            libs["libMNN_CL.so"] = load_mnn_cl(phone.argv0)
        need_attention(phone, libs, backend)
    cond, clip_needed = sdxl_conditioning(a)
    phone.footprint(speed.SDXL_BASE_RSS_KB, speed.INIT_POWER_W)
    if sw.preinit:
        out("[SDXL] pre-initialising the UNet before CLIP (SDXL_PREINIT=1)")
        unet_init(phone, a)
    if clip_needed:
        held = speed.SDXL_UNET_RSS_KB if sw.preinit else 0
        phone.footprint(held + speed.SDXL_CLIP_RSS_KB, speed.CLIP_CPU_POWER_W)
        out(f"[SDXL] CLIP on CPU: {a.clip_dir}/{assets.CLIP_MODEL}, {assets.CLIP2_MODEL}")
        clip_s = phone.spend(speed.SDXL_CLIP_S, speed.CLIP_CPU_POWER_W)
        perf("CLIP", f"ms={fmt(clip_s * 1000)}")
        out("[SDXL] CLIP released")
    if not sw.preinit:
        phone.footprint(speed.SDXL_BASE_RSS_KB, speed.INIT_POWER_W)
        unet_init(phone, a)
    phone.footprint(speed.SDXL_UNET_RSS_KB, speed.UNET_POWER_W)
    latent = unet_loop(phone, a, sw.k, sw.x0, cond, reuse)
    if sw.latent_out:
        write_array(device_path(sw.latent_out), sw.latent_out, latent)
        out(f"[SDXL] latent saved to {sw.latent_out} (1x4x{a.height // 8}x{a.width // 8} "
            "float32)")
    if sw.unet_only:
        out("[SDXL] SDXL_UNET_ONLY=1: VAE skipped")
        return 0
    out("[SDXL] single process: decoding with the VAE (UNet buffers partly retained)")
    phone.footprint(speed.SDXL_UNET_RESIDUE_KB + speed.SDXL_VAE_RSS_KB, speed.VAE_POWER_W)
    vae_s = phone.spend(speed.SDXL_VAE_INIT_S + speed.SDXL_VAE_S, speed.VAE_POWER_W)
    out(f"[SDXL] VAE init + decode {vae_s:.3f} s")
    write_array(device_path(a.output), a.output, imagegen.decode(latent))
    out(f"[SDXL] saved {a.output} (1x3x{a.height}x{a.width} float32)")
    return 0


def unet_init(phone: Phone, a: SdxlArgs) -> None:
    phone.footprint(speed.SDXL_UNET_RSS_KB, speed.INIT_POWER_W)
    out(f"[SDXL] loading {a.weights}/unet.bin, building CLML kernels")
    init_s = phone.spend_chunks(speed.SDXL_UNET_INIT_S, speed.INIT_POWER_W, speed.INIT_CHUNKS)
    perf("UNet", f"init_s={fmt(init_s)}", False)


def unet_loop(phone: Phone, a: SdxlArgs, k: int, x0: bool, cond: npt.NDArray[np.int32],
              reuse: bool) -> npt.NDArray[np.float32]:
    run_steps = a.steps - k
    if k:
        out(f"[SDXL] early decode: k={k}, running {run_steps}/{a.steps} steps")
    step_base = speed.SDXL_UNET_STEP_S if a.guidance > 1.0 else speed.SDXL_UNET_EVAL_S
    loop_s = 0.0
    for step in range(1, run_steps + 1):
        step_s = phone.spend(step_base, speed.UNET_POWER_W)
        loop_s += step_s
        out(f"[SDXL] UNet step {step}/{run_steps} {step_s:.4f} s")
    perf("UNet", f"loop_s={fmt(loop_s)} s/step={fmt(loop_s / run_steps)}")
    latent = imagegen.synth_latent(cond, a.seed, a.steps, a.guidance, a.height, a.width)
    key = imagegen.prompt_key(cond)
    if not x0 and k == 0:
        latent = imagegen.colour_blocks(latent, imagegen.rng_for(b"last-step", key, a.seed))
    elif not x0:
        latent = imagegen.residual_noise(latent, imagegen.rng_for(b"x_t", key, a.seed),
                                         RESIDUAL_NOISE_PER_STEP * k / a.steps)
    if reuse:
        latent = drift(latent, key, a.seed)
    elif phone.build.tnn_reuse:
        latent = build_drift(latent, key, a.seed, "latent")
    out(f"[SDXL] output latent: {'x0' if x0 else 'x_t'} at step {run_steps}/{a.steps}")
    return latent


# ---- sdxl_vae_decoder_run ------------------------------------------------------------------

def cwd_write_error() -> str | None:
    """Why a shell user could not create ``output/`` here, or None."""
    denial = paths.shell_write_denial(paths.to_device(Path.cwd().resolve()))
    if denial is not None:
        return denial
    try:
        Path("output").mkdir(exist_ok=True)
    except OSError as exc:
        return exc.strerror or "I/O error"
    return None if os.access("output", os.W_OK) else "Permission denied"


def run_vae(phone: Phone, argv: list[str]) -> int:
    libs = link(phone.argv0, ("libMNN.so", "libMNN_Express.so", "libOpenCL.so", "libc++.so"))
    if len(argv) != 9:
        raise Exit(f"Usage: {phone.argv0} <weights_dir> <iters> <warmup> <batch> <tol> "
                   "<latent_h> <latent_w> <flag> <latent.qfp32>")
    weights_shown = argv[0]
    iters, warmup = parse_int(argv[1], "iters", 1), parse_int(argv[2], "warmup", 0)
    parse_float(argv[3], "batch")
    parse_float(argv[4], "tol")
    lat_h, lat_w = parse_int(argv[5], "latent_h", 1), parse_int(argv[6], "latent_w", 1)
    parse_float(argv[7], "flag")
    latent_shown = argv[8]
    backend = attention_backend() or "cpu"
    banner(phone, "VAE")
    reuse = tnn_reuse()
    out("[MNN] config: backend={} gpu_mode={} memory={} power={} precision={}".format(
        *(os.environ.get(v, "-") for v in ("MNN_BACKEND", "MNN_GPU_MODE", "MNN_MEM",
                                            "MNN_POWER", "MNN_PREC"))))
    weights = device_path(weights_shown)
    index = assets.verify_weights(weights, weights_shown, "sdxl", ["vae_decoder.bin"])
    if (lat_h * 8, lat_w * 8) != (index.height, index.width):
        raise Exit(f"[VAE] unsupported latent {lat_h}x{lat_w}: the CLML VAE was compiled for "
                   f"{index.height // 8}x{index.width // 8}")
    try:
        data = device_path(latent_shown).read_bytes()
    except OSError:
        raise Exit(f"Failed to open {latent_shown}: No such file or directory") from None
    expected = 4 * lat_h * lat_w * 4
    if len(data) != expected:
        raise Exit(f"Latent size mismatch: {latent_shown} has {len(data)} bytes, expected "
                   f"{expected} (1x4x{lat_h}x{lat_w} float32)")
    latent = np.frombuffer(data, dtype=np.float32).reshape(1, 4, lat_h, lat_w).copy()
    phone.footprint(speed.SDXL_VAE_RSS_KB, speed.INIT_POWER_W)
    if backend == "opencl":
        libs["libMNN_CL.so"] = load_mnn_cl(phone.argv0)
    out(f"[VAE] loading {weights_shown}/vae_decoder.bin")
    init_s = phone.spend(speed.SDXL_VAE_INIT_S, speed.INIT_POWER_W)
    need_attention(phone, libs, backend)
    out(f"[VAE] init {init_s:.3f} s")
    per_it = speed.SDXL_VAE_S * (1.0 if backend == "opencl"
                                 else speed.SDXL_VAE_CPU_ATTENTION_FACTOR)
    for i in range(warmup):
        out(f"[VAE] warmup {i + 1}/{warmup} {phone.spend(per_it, speed.VAE_POWER_W):.3f} s")
    total = 0.0
    for i in range(iters):
        it_s = phone.spend(per_it, speed.VAE_POWER_W)
        total += it_s
        out(f"[VAE] iter {i + 1}/{iters} {it_s:.3f} s")
    image = imagegen.decode(latent)
    if reuse:
        image = decode_drift(image, bytes_key(data), 0)
    elif phone.build.tnn_reuse:
        image = build_drift(image, bytes_key(data), 0, "image")
    perf("VAE", f"iters={iters} warmup={warmup} s/it={fmt(total / iters)}", False)
    problem = cwd_write_error()
    if problem is not None:
        raise Exit(f"Failed to open {VAE_OUTPUT_REL} for writing: {problem}")
    write_array(Path(VAE_OUTPUT_REL), VAE_OUTPUT_REL, image)
    out(f"[VAE] saved {VAE_OUTPUT_REL} (1x3x{lat_h * 8}x{lat_w * 8} float32)")
    return 0


# ---- entry point -----------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[Phone, list[str]], int]] = {
    "sd15_pipeline_run": run_sd15, "sdxl_pipeline_run": run_sdxl,
    "sdxl_vae_decoder_run": run_vae,
}


def _mount_status(state: PhoneState, pid: int) -> None:
    """Show our simulated /proc/<pid>/status (namespace mode only; failure is harmless)."""
    if paths.sim_root() is not None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["mount", "--bind", str(state.status_path(pid)), f"/proc/{pid}/status"],
                       capture_output=True, timeout=10, check=False)


def run_level(state: PhoneState, ctl: Path, binary: str, build: builds.Build,
              rng: random.Random) -> float:
    """This run's factor: the build's speed x the phone's boot, session and run noise."""
    noise = speed.load_noise(ctl)
    return (build.speed * speed.offsets(noise, state.serial, state.meta.get("boot_wall"),
                                        speed.session_key(ctl), binary)
            * speed.run_level(noise, rng))


def main(binary_name: str, argv: list[str], argv0: str | None = None,
         build: dict[str, object] | None = None) -> int:
    """Run simulated binary ``binary_name`` with arguments ``argv``; return its exit code.
    ``build``: the binary's own build (:mod:`harness.sim.builds`), from its wrapper script."""
    runner = RUNNERS.get(binary_name)
    shown0 = strip_root(argv0 or binary_name)
    argv = [strip_root(arg) for arg in argv]
    if runner is None:
        err(f"{shown0}: unknown simulated binary {binary_name!r}")
        return 1
    ctl = ctl_dir()
    if not (ctl / "profile.json").is_file():
        err(f"{shown0}: not running on a virtual phone ({ctl}/profile.json is missing)")
        return 1
    state = PhoneState(ctl)
    pid = os.getpid()
    try:
        made = builds.Build.from_mapping(build)
    except builds.BuildError as exc:
        err(f"{shown0}: {exc}")
        return 1
    jitter = random.Random()
    phone = Phone(binary_name, shown0, state, pid, jitter, made,
                  run_level(state, ctl, binary_name, made, jitter))
    state.register_process(pid, binary_name, speed.SDXL_BASE_RSS_KB // 2,
                           speed.SDXL_BASE_RSS_KB // 2, speed.INIT_POWER_W,
                           speed.THREADS.get(binary_name, 16))
    _mount_status(state, pid)
    try:
        return runner(phone, argv)
    except Exit as exc:
        err(exc.message)
        return exc.code
    except assets.AssetError as exc:
        err(str(exc))
        return 1
    finally:
        state.unregister_process(pid)
        # A read right after the binary ends sees what it did to the phone, as a live read
        # of a real zone would (state.request_refresh); while it runs, the daemon's tick
        # shows its heat like a sensor polled every TICK_INTERVAL_S. (Asking after every
        # chunk of work made the daemon's refreshes lengthen the binary's wall time.)
        state.request_refresh()
