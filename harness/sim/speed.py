"""The cost model of the simulated pipeline binaries: time, memory and power per phase.

Times are simulated seconds on the seed's reference phone (SM8650, ``speed_factor`` 1.0); a
profile's ``speed_factor`` and the thermal throttle factor multiply them, and every chunk gets
about 1 % random jitter. Figures marked *recorded* come from the seed
(seeds/002_9441a55bb821fe26.txt, "currently verified speeds", logs under
``release/bench/logs``); figures marked *chosen* are ours, picked to be plausible.
"""

from __future__ import annotations

import os

# ---- time (simulated seconds) -----------------------------------------------------------
# recorded: SD1.5 512, 20 steps on the device: total_s=9.19277, s/step=0.459639
SD15_STEP_S = 0.459639
# recorded: SDXL 1024 UNet only, 20 steps, precomputed embeddings:
#   init_s=65.6627, loop_s=64.3368, s/step=3.21684 (each step evaluates uncond + cond)
SDXL_UNET_INIT_S = 65.6627
SDXL_UNET_STEP_S = 3.21684
# recorded: SDXL 1024 UNet single step: iters=1, s/it=1.61393 (one UNet evaluation); used
# for steps without classifier-free guidance (guidance <= 1 evaluates cond only).
SDXL_UNET_EVAL_S = 1.61393

SD15_INIT_S = 7.8  # chosen: load CLML weights, build kernels
SD15_CLIP_S = 0.085  # chosen: CLML text encoder on the GPU, two prompts
SD15_VAE_S = 1.42  # chosen: 512x512 CLML VAE decode
SDXL_CLIP_S = 1.85  # chosen: both MNN int8 text encoders on the CPU, two prompts
SDXL_VAE_INIT_S = 11.5  # chosen: CLML VAE weights + MNN attention module
SDXL_VAE_S = 9.8  # chosen: 1024x1024 decode, CLML VAE + MNN Attention on OpenCL
SDXL_VAE_CPU_ATTENTION_FACTOR = 1.35  # chosen: attention host op on the CPU instead
JITTER_FRACTION = 0.01  # standard deviation of the per-chunk timing noise
INIT_CHUNKS = 4  # long phases advance (and heat the phone) in this many pieces

# ---- memory (kB of resident set) ---------------------------------------------------------
# chosen so that, with the built-in profiles' MemAvailable at idle (16 GB: 11.70e6 kB,
# 12 GB: 8.26e6, 8 GB: 4.94e6, 24 GB: 19.2e6):
# - SD1.5 fits every phone;
# - SDXL split (UNet process, then VAE process) fits 16 GB but not 12 GB (the UNet);
# - CLIP + UNet resident together (SDXL_PREINIT=1) and the single process (UNet not fully
#   released + VAE) exceed 16 GB and fit 24 GB.
SD15_INIT_RSS_KB = 2_700_000
SD15_RUN_RSS_KB = 3_300_000
SDXL_BASE_RSS_KB = 250_000  # the process, runtimes and I/O buffers
SDXL_CLIP_RSS_KB = 1_700_000  # both CLIP encoders (MNN int8) with the base
SDXL_UNET_RSS_KB = 10_300_000  # CLML UNet weights, workspace and base
SDXL_UNET_RESIDUE_KB = 8_000_000  # what a single process still holds after the UNet
SDXL_VAE_RSS_KB = 4_500_000  # CLML VAE + MNN attention at 1024x1024

# ---- power (W), drives the thermal model -------------------------------------------------
INIT_POWER_W = 3.0
CLIP_CPU_POWER_W = 5.5
SD15_STEP_POWER_W = 8.0
UNET_POWER_W = 9.0
VAE_POWER_W = 8.0

# ---- thread counts shown in /proc/<pid>/status -------------------------------------------
THREADS = {"sd15_pipeline_run": 12, "sdxl_pipeline_run": 18, "sdxl_vae_decoder_run": 14}


TIME_SCALE_ENV = "HARNESS_SIM_TIME_SCALE"


def wall_scale(phone_scale: float) -> float:
    """The phone's time scale, or ``HARNESS_SIM_TIME_SCALE`` for this one process (a test
    that samples memory while a step runs wants it slower than the farm)."""
    override = os.environ.get(TIME_SCALE_ENV, "")
    try:
        value = float(override) if override else 0.0
    except ValueError:
        value = 0.0
    return value if value > 0 else phone_scale
