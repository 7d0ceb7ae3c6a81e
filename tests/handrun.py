"""The seed's flows done by hand, command for command, through adbutils.

This is what an engineer did before harness had recipes: push the assets, write the CLIP
token ids, run the UNet process, run the VAE from ``/data/local/tmp``, pull the qfp32 and
convert it. The demo script and the end-to-end tests use it to show that a virtual phone
behaves as seed-facts.md says; ``harness run`` (recipes) supersedes it for real work.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from harness.clip import CLIP_CONTEXT_TOKENS, CLIP_END_TOKEN, CLIP_START_TOKEN
from harness.run.images import ImageStats, qfp32_to_png

DEVICE_TMP = "/data/local/tmp"
# "a photo of a cat" in CLIP's vocabulary (start and end tokens included).
A_PHOTO_OF_A_CAT = (CLIP_START_TOKEN, 320, 1125, 539, 320, 2368, CLIP_END_TOKEN)

SDXL_COMMON_ENV = {
    "LD_LIBRARY_PATH": "/data/local/tmp/MNN_fuse:/system/lib64:/vendor/lib64",
    "MNN_CL_LIB": "/data/local/tmp/MNN_fuse/libMNN_CL.so",
    "CLML_MNN_ATTN_BACKEND": "opencl",
    "CLML_MNN_ATTN_FP32": "1",
    "CLML_NO_REUSE_TNN": "1",
}
SDXL_UNET_ENV = {
    **SDXL_COMMON_ENV,
    "SDXL_EARLY_DECODE_K": "2",
    "SDXL_EARLY_DECODE_X0": "1",
    "SDXL_UNET_ONLY": "1",
    "SDXL_LATENT_OUT": "/data/local/tmp/sdxl_latent_clipcpu_early2_x0.qfp32",
}
SDXL_VAE_ENV = {
    "LD_LIBRARY_PATH": SDXL_COMMON_ENV["LD_LIBRARY_PATH"],
    "MNN_CL_LIB": SDXL_COMMON_ENV["MNN_CL_LIB"],
    "MNN_BACKEND": "opencl", "MNN_GPU_MODE": "1", "MNN_MEM": "0", "MNN_POWER": "0",
    "MNN_PREC": "0",
    "CLML_MNN_ATTN_BACKEND": "opencl", "CLML_MNN_ATTN_FP32": "1", "CLML_NO_REUSE_TNN": "1",
}
SDXL_UNET_ARGV = [
    "/data/local/tmp/sdxl_pipeline_run", "/data/local/tmp/sdxl_clml/sdxl_clml_weights",
    "/data/local/tmp/MNN_clip", "/data/local/tmp/clip_l_ids.i32",
    "/data/local/tmp/clip_g_ids.i32", "20", "7.5", "0", "1024", "1024",
    "/data/local/tmp/unused_output.qfp32",
]
SDXL_VAE_ARGV = [
    "./sdxl_vae_decoder_run", "/data/local/tmp/sdxl_clml/sdxl_clml_weights",
    "1", "0", "1", "0.1", "128", "128", "1", "/data/local/tmp/sdxl_latent_clipcpu_early2_x0.qfp32",
]
SDXL_OUTPUT = "/data/local/tmp/output/sdxl_vae_out.qfp32"
SD15_OUTPUT = "/data/local/tmp/output/clml_stable_diffusion_output.qfp32"


def token_rows(cond: tuple[int, ...], pad: int) -> bytes:
    """2 x 77 int32, rows [uncond (empty prompt), cond], padded with ``pad``."""
    uncond = [CLIP_START_TOKEN, CLIP_END_TOKEN]
    rows = np.full((2, CLIP_CONTEXT_TOKENS), pad, dtype="<i4")
    rows[0, : len(uncond)] = uncond
    rows[1, : len(cond)] = cond
    return rows.tobytes()


def shell_line(env: dict[str, str], argv: list[str], cwd: str | None = None) -> str:
    """A device shell command line with every value quoted."""
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command = " ".join(shlex.quote(a) for a in argv)
    line = f"{assignments} {command}" if assignments else command
    return f"cd {shlex.quote(cwd)} && {line}" if cwd else line


@dataclass
class StepResult:
    command: str
    exit_code: int
    output: str
    seconds: float


@dataclass
class HandRun:
    steps: list[StepResult] = field(default_factory=list)
    png: Path | None = None
    stats: ImageStats | None = None


def push_tree(device: Any, local: Path, remote: str) -> int:
    """Push every file under ``local`` to ``remote`` keeping modes; return the file count."""
    count = 0
    for path in sorted(local.rglob("*")):
        if path.is_file():
            dest = f"{remote}/{path.relative_to(local).as_posix()}"
            device.sync.push(path, dest, mode=path.stat().st_mode & 0o777)
            count += 1
    return count


def _run(device: Any, line: str, result: HandRun) -> StepResult:
    start = time.monotonic()
    ret = device.shell2(line, timeout=3600, v2=True)
    step = StepResult(line, ret.returncode, ret.output, time.monotonic() - start)
    result.steps.append(step)
    return step


def _collect(device: Any, remote: str, png: Path, size: int, result: HandRun) -> None:
    """Pull the 1x3xSIZExSIZE float32 output into ``png``'s folder and convert it to ``png``."""
    png.parent.mkdir(parents=True, exist_ok=True)
    raw = png.parent / PurePosixPath(remote).name
    device.sync.pull(remote, raw)
    result.png = png
    result.stats = qfp32_to_png(raw, (1, 3, size, size), png)


def sdxl_split(device: Any, assets: Path, out_dir: Path,
               cond: tuple[int, ...] = A_PHOTO_OF_A_CAT) -> HandRun:
    """The seed's recommended SDXL 1024 flow: UNet-only process, then VAE process."""
    result = HandRun()
    push_tree(device, assets, DEVICE_TMP)
    device.sync.push(token_rows(cond, CLIP_END_TOKEN), f"{DEVICE_TMP}/clip_l_ids.i32")
    device.sync.push(token_rows(cond, 0), f"{DEVICE_TMP}/clip_g_ids.i32")
    device.shell2(f"rm -f {SDXL_OUTPUT}")
    if _run(device, shell_line(SDXL_UNET_ENV, SDXL_UNET_ARGV), result).exit_code != 0:
        return result
    if _run(device, shell_line(SDXL_VAE_ENV, SDXL_VAE_ARGV, cwd=DEVICE_TMP),
            result).exit_code != 0:
        return result
    _collect(device, SDXL_OUTPUT, out_dir / "sdxl_vae_out.png", 1024, result)
    return result


def sd15(device: Any, assets: Path, out_dir: Path, steps: int = 20) -> HandRun:
    """The seed's SD1.5 512 single-process flow."""
    result = HandRun()
    push_tree(device, assets, DEVICE_TMP)
    device.shell2(f"rm -f {SD15_OUTPUT}")
    argv = ["/data/local/tmp/sd15_pipeline_run", "/data/local/tmp/sd15_clml/sd15_clml_weights",
            str(steps)]
    if _run(device, shell_line({"CLML_NO_REUSE_TNN": "1"}, argv), result).exit_code != 0:
        return result
    _collect(device, SD15_OUTPUT, out_dir / "sd15_output.png", 512, result)
    return result
