"""A virtual phone's insides in a temporary directory, for unit tests (no adb, no namespace).

``make_phone`` boots a phone's state and filesystem in ``base`` (``root/`` and ``ctl/``) and
copies the demo assets plus CLIP token ids into its ``/data/local/tmp``. The simulated binaries
find both through ``HARNESS_SIM_ROOT`` / ``HARNESS_SIM_DIR``, as in the farm's rewrite mode.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.sim import assets, devtools, profiles, state
from harness.sim.sandbox import PhoneLayout

UNIT_TIME_SCALE = 0.001  # an SDXL UNet run (about 125 simulated s) sleeps 0.125 s
TMP = "/data/local/tmp"
PROMPT = "a lighthouse on a cliff at sunset, oil painting"

SIM_ENV_VARS = ("CLML_NO_REUSE_TNN", "LD_LIBRARY_PATH", "MNN_CL_LIB", "CLML_MNN_ATTN_BACKEND",
                "CLML_MNN_ATTN_FP32", "SDXL_EARLY_DECODE_K", "SDXL_EARLY_DECODE_X0",
                "SDXL_EXPORT_X0", "SDXL_UNET_ONLY", "SDXL_LATENT_OUT", "SDXL_TEXT_EMBEDS",
                "SDXL_POOLED_EMBEDS", "SDXL_PREINIT", "SD15_SEED", "SD15_CLIP_IDS",
                "SIM_PERF_LABELS", "MNN_BACKEND",
                "MNN_GPU_MODE", "MNN_MEM", "MNN_POWER", "MNN_PREC")

FUSE_LIBS = f"{TMP}/MNN_fuse:/system/lib64:/vendor/lib64"
SDXL_WEIGHTS = f"{TMP}/sdxl_clml/sdxl_clml_weights"
SD15_WEIGHTS = f"{TMP}/sd15_clml/sd15_clml_weights"
LATENT = f"{TMP}/sdxl_latent_clipcpu_early2_x0.qfp32"

# The seed's environments and commands (seeds/002), as argument lists.
UNET_ENV = {"LD_LIBRARY_PATH": FUSE_LIBS, "MNN_CL_LIB": f"{TMP}/MNN_fuse/libMNN_CL.so",
            "CLML_MNN_ATTN_BACKEND": "opencl", "CLML_MNN_ATTN_FP32": "1",
            "CLML_NO_REUSE_TNN": "1", "SDXL_EARLY_DECODE_K": "2", "SDXL_EARLY_DECODE_X0": "1",
            "SDXL_UNET_ONLY": "1", "SDXL_LATENT_OUT": LATENT}
UNET_ARGS = [SDXL_WEIGHTS, f"{TMP}/MNN_clip", f"{TMP}/clip_l_ids.i32", f"{TMP}/clip_g_ids.i32",
             "20", "7.5", "0", "1024", "1024", f"{TMP}/unused_output.qfp32"]
VAE_ENV = {"LD_LIBRARY_PATH": FUSE_LIBS, "MNN_CL_LIB": f"{TMP}/MNN_fuse/libMNN_CL.so",
           "MNN_BACKEND": "opencl", "MNN_GPU_MODE": "1", "MNN_MEM": "0", "MNN_POWER": "0",
           "MNN_PREC": "0", "CLML_MNN_ATTN_BACKEND": "opencl", "CLML_MNN_ATTN_FP32": "1",
           "CLML_NO_REUSE_TNN": "1"}
VAE_ARGS = [SDXL_WEIGHTS, "1", "0", "1", "0.1", "128", "128", "1", LATENT]
SD15_ENV = {"CLML_NO_REUSE_TNN": "1"}
SD15_ARGS = [SD15_WEIGHTS, "20"]


@dataclass(frozen=True)
class TinyPhone(PhoneLayout):
    """A phone's layout (root, ctl) plus its profile, without the daemon."""

    profile: profiles.PhoneProfile

    @property
    def tmp(self) -> Path:
        return self.root / "data/local/tmp"

    @property
    def state(self) -> state.PhoneState:
        return state.PhoneState(self.ctl)

    def host(self, device: str) -> Path:
        return self.root / device.lstrip("/")

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SIM_ENV_VARS}
        env.update(HARNESS_SIM_ROOT=str(self.root), HARNESS_SIM_DIR=str(self.ctl))
        env.update(extra or {})
        return env

    def run(self, binary: str, args: list[str], extra: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run a demo binary as a real process (its wrapper script), as adbd would."""
        return subprocess.run([str(self.tmp / binary), *args], env=self.env(extra),
                              cwd=cwd or self.root, capture_output=True, text=True,
                              timeout=60, check=False)

    def read(self, device: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.fromfile(self.host(device), dtype=np.float32).reshape(shape)


def make_phone(base: Path, profile: str = "sm8650-16g",
               time_scale: float = UNIT_TIME_SCALE) -> TinyPhone:
    prof = profiles.load_profile(profile)
    phone = TinyPhone(base, prof)
    state.init_phone(phone.ctl, prof, f"unit-{profile}", time_scale)
    devtools.install_system(phone.root, prof, f"unit-{profile}")
    assets.build_demo_assets(phone.tmp)
    (phone.tmp / "clip_l_ids.i32").write_bytes(assets.demo_token_ids(PROMPT).tobytes())
    (phone.tmp / "clip_g_ids.i32").write_bytes(assets.demo_token_ids(PROMPT, 0).tobytes())
    return phone


def blocky_tiles(image: np.ndarray, tile: int = 64) -> int:
    """Aligned ``tile`` squares of a (1,3,H,W) image that are flat and of saturated colour."""
    img = np.nan_to_num(image[0], nan=0.0)
    _, h, w = img.shape
    count = 0
    for y in range(0, h - tile + 1, tile):
        for x in range(0, w - tile + 1, tile):
            core = img[:, y + 8:y + tile - 8, x + 8:x + tile - 8]
            means = core.mean(axis=(1, 2))
            if core.std(axis=(1, 2)).max() < 0.02 and means.max() - means.min() > 1.5:
                count += 1
    return count


def constant_latent_tiles(latent: np.ndarray, tile: int = 8) -> int:
    """Aligned ``tile`` squares of a (1,4,h,w) latent holding one constant vector."""
    lat = latent[0]
    _, h, w = lat.shape
    return sum(1 for y in range(0, h, tile) for x in range(0, w, tile)
               if float(np.ptp(np.nan_to_num(lat[:, y:y + tile, x:x + tile]), axis=(1, 2)).max())
               == 0.0)  # max - min, not std: numpy 2.4's std of a constant is not exactly 0

