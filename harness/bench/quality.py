"""Output drift: PSNR and SSIM of later images against a series' reference image.

For a series with a fixed prompt and seed the first valid image is the reference; every
later image is compared with it. A drop is a ``quality`` regression even when the timing is
fine: numeric drift (a build that reuses TNN buffers, a changed accumulator precision) shows
here before it shows as colour blocks.

- :func:`psnr` — ``10 log10(L^2 / MSE)`` in dB, ``inf`` for identical images.
- :func:`ssim` — the structural similarity of Wang, Bovik, Sheikh & Simoncelli (2004) with
  an 11 x 11 Gaussian window (sigma 1.5, truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03,
  population (co)variances, the mean over the map without the 5-pixel border the window
  cannot cover; colour images: the mean over channels. It is scikit-image's
  ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=L)`` written in numpy (scikit-image and scipy would
  add ~150 MB to a runtime that only needs this), checked against it in the unit tests.
- :func:`compare_output` — both numbers and a verdict: ``quality`` when SSIM <
  :data:`DEFAULT_MIN_SSIM` (0.98) or PSNR < :data:`DEFAULT_MIN_PSNR_DB` (35 dB), else ``ok``.
  Why these: the same seed on the same build gives a bit-identical image (SSIM 1, PSNR inf);
  harmless float reordering moves pixels by about one 8-bit level (PSNR > 45 dB, SSIM >
  0.995); visible drift (blocks, colour casts, a changed denoising trajectory) is well
  below 0.98 / 35 dB. Both are parameters.

L (``data_range``) defaults to 255 for integer images and 1.0 for float images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

DEFAULT_MIN_SSIM = 0.98
DEFAULT_MIN_PSNR_DB = 35.0
SSIM_SIGMA = 1.5  # Wang et al. 2004
SSIM_TRUNCATE = 3.5  # scikit-image's truncation: an 11-tap window for sigma 1.5
K1, K2 = 0.01, 0.03

Image = npt.ArrayLike


@dataclass(frozen=True)
class QualityResult:
    """One later image against the reference."""

    psnr_db: float
    ssim: float
    verdict: Literal["ok", "quality"]
    reason: str


def _as_pair(ref: Image, img: Image,
             data_range: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    a, b = np.asarray(ref), np.asarray(img)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if data_range is None:
        data_range = 255.0 if np.issubdtype(a.dtype, np.integer) else 1.0
    return a.astype(np.float64), b.astype(np.float64), float(data_range)


def psnr(ref: Image, img: Image, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB (inf when the images are identical)."""
    a, b, rng = _as_pair(ref, img, data_range)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(rng * rng / mse)


def _gaussian_kernel() -> np.ndarray:
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return np.asarray(k / k.sum())


def _blur(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' Gaussian filtering of a 2-D array (no padding needed: SSIM drops
    the border the window does not cover)."""
    rows = np.apply_along_axis(np.convolve, 1, x, kernel, mode="valid")
    return np.asarray(np.apply_along_axis(np.convolve, 0, rows, kernel, mode="valid"))


def _ssim_2d(a: np.ndarray, b: np.ndarray, rng: float) -> float:
    kernel = _gaussian_kernel()
    if min(a.shape) < kernel.size:
        raise ValueError(f"images must be at least {kernel.size} pixels each way for SSIM")
    mu_a, mu_b = _blur(a, kernel), _blur(b, kernel)
    var_a = _blur(a * a, kernel) - mu_a * mu_a
    var_b = _blur(b * b, kernel) - mu_b * mu_b
    cov = _blur(a * b, kernel) - mu_a * mu_b
    c1, c2 = (K1 * rng) ** 2, (K2 * rng) ** 2
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
            / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(smap.mean())


def ssim(ref: Image, img: Image, *, data_range: float | None = None) -> float:
    """Mean SSIM; a 3-D array is height x width x channels (the mean over channels)."""
    a, b, rng = _as_pair(ref, img, data_range)
    if a.ndim == 2:
        return _ssim_2d(a, b, rng)
    if a.ndim == 3:
        return float(np.mean([_ssim_2d(a[..., c], b[..., c], rng) for c in range(a.shape[2])]))
    raise ValueError(f"expected a 2-D or 3-D image, got {a.ndim} dimensions")


def compare_output(ref: Image, img: Image, *, data_range: float | None = None,
                   min_ssim: float = DEFAULT_MIN_SSIM,
                   min_psnr_db: float = DEFAULT_MIN_PSNR_DB) -> QualityResult:
    """PSNR, SSIM and the drift verdict of ``img`` against the reference ``ref``."""
    p = psnr(ref, img, data_range=data_range)
    s = ssim(ref, img, data_range=data_range)
    failed = []
    if s < min_ssim:
        failed.append(f"SSIM {s:.4f} < {min_ssim}")
    if p < min_psnr_db:
        failed.append(f"PSNR {p:.1f} dB < {min_psnr_db} dB")
    if failed:
        return QualityResult(p, s, "quality", "output drifted: " + ", ".join(failed))
    shown = "identical" if math.isinf(p) else f"PSNR {p:.1f} dB, SSIM {s:.4f}"
    return QualityResult(p, s, "ok", f"matches the reference ({shown})")
