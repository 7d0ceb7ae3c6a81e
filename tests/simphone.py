"""A virtual phone's insides in a temporary directory, for unit tests (no adb, no namespace).

``make_phone`` boots a phone's state and filesystem in ``base`` (``root/`` and ``ctl/``) and
copies the demo assets plus CLIP token ids into its ``/data/local/tmp``. The simulated binaries
find both through ``HARNESS_SIM_ROOT`` / ``HARNESS_SIM_DIR``, as in the farm's rewrite mode.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.sim import assets, devtools, profiles, state
from harness.sim.sandbox import PhoneLayout
from tests import handrun

UNIT_TIME_SCALE = 0.001  # an SDXL UNet run (about 125 simulated s) sleeps 0.125 s
TMP = handrun.DEVICE_TMP
PROMPT = "a lighthouse on a cliff at sunset, oil painting"

SIM_ENV_VARS = ("CLML_NO_REUSE_TNN", "LD_LIBRARY_PATH", "MNN_CL_LIB", "CLML_MNN_ATTN_BACKEND",
                "CLML_MNN_ATTN_FP32", "SDXL_EARLY_DECODE_K", "SDXL_EARLY_DECODE_X0",
                "SDXL_EXPORT_X0", "SDXL_UNET_ONLY", "SDXL_LATENT_OUT", "SDXL_TEXT_EMBEDS",
                "SDXL_POOLED_EMBEDS", "SDXL_PREINIT", "SD15_SEED", "SD15_CLIP_IDS",
                "SIM_PERF_LABELS", "MNN_BACKEND",
                "MNN_GPU_MODE", "MNN_MEM", "MNN_POWER", "MNN_PREC")

SDXL_WEIGHTS = handrun.SDXL_UNET_ARGV[1]
SD15_WEIGHTS = f"{TMP}/sd15_clml/sd15_clml_weights"
LATENT = handrun.SDXL_UNET_ENV["SDXL_LATENT_OUT"]

# The seed's environments and commands (seeds/002), as argument lists: one copy, handrun's.
UNET_ENV = handrun.SDXL_UNET_ENV
UNET_ARGS = handrun.SDXL_UNET_ARGV[1:]
VAE_ENV = handrun.SDXL_VAE_ENV
VAE_ARGS = handrun.SDXL_VAE_ARGV[1:]
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
               time_scale: float = UNIT_TIME_SCALE, **overrides: Any) -> TinyPhone:
    prof = dataclasses.replace(profiles.load_profile(profile), **overrides)
    phone = TinyPhone(base, prof)
    state.init_phone(phone.ctl, prof, f"unit-{profile}", time_scale)
    devtools.install_system(phone.root, prof, f"unit-{profile}")
    assets.build_demo_assets(phone.tmp)
    (phone.tmp / "clip_l_ids.i32").write_bytes(assets.demo_token_ids(PROMPT).tobytes())
    (phone.tmp / "clip_g_ids.i32").write_bytes(assets.demo_token_ids(PROMPT, 0).tobytes())
    return phone
