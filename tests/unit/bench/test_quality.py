"""PSNR and SSIM against scikit-image (test-only dependency), and the drift verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from harness.bench.quality import compare_output, psnr, ssim


def _pair(seed: int, shape: tuple[int, ...], noise: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # a smooth image (like a generated picture) plus noise
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    base = 128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    if len(shape) == 3:
        base = np.stack([base + 10 * c for c in range(shape[2])], axis=-1)
    ref = np.clip(base, 0, 255).astype(np.uint8)
    img = np.clip(ref.astype(int) + rng.integers(-noise, noise + 1, ref.shape), 0, 255)
    return ref, img.astype(np.uint8)


@pytest.mark.parametrize(("seed", "shape", "noise"), [
    (1, (32, 40), 3), (2, (48, 33, 3), 10), (3, (11, 11), 40), (4, (64, 64, 3), 1),
    (5, (20, 70), 60),
])
def test_ssim_and_psnr_match_scikit_image(seed: int, shape: tuple[int, ...],
                                          noise: int) -> None:
    ref, img = _pair(seed, shape, noise)
    expected = structural_similarity(
        ref, img, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=255, channel_axis=2 if len(shape) == 3 else None)
    assert ssim(ref, img) == pytest.approx(expected, abs=1e-10)
    assert psnr(ref, img) == pytest.approx(peak_signal_noise_ratio(ref, img, data_range=255))


def test_float_images_default_to_range_one() -> None:
    ref, img = _pair(6, (24, 24), 8)
    a, b = ref / 255.0, img / 255.0
    assert ssim(a, b) == pytest.approx(ssim(ref, img), abs=1e-10)
    assert psnr(a, b) == pytest.approx(psnr(ref, img))


def test_identical_images() -> None:
    ref, _ = _pair(7, (16, 16, 3), 0)
    r = compare_output(ref, ref)
    assert math.isinf(r.psnr_db) and r.ssim == pytest.approx(1.0)
    assert r.verdict == "ok" and "identical" in r.reason


def test_one_level_jitter_is_ok_and_drift_is_a_quality_regression() -> None:
    ref, jitter = _pair(8, (64, 64, 3), 1)
    assert compare_output(ref, jitter).verdict == "ok"
    blocks = ref.copy()
    blocks[16:32, 16:48] = 0  # a colour block, as TNN reuse shows it
    bad = compare_output(ref, blocks)
    assert bad.verdict == "quality" and "SSIM" in bad.reason
    _, noisy = _pair(9, (64, 64, 3), 25)
    assert compare_output(ref, noisy).verdict == "quality"
    assert compare_output(ref, noisy, min_ssim=0.0, min_psnr_db=0.0).verdict == "ok"


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        ssim(np.zeros((16, 16)), np.zeros((16, 17)))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((8, 16)), np.zeros((8, 16)))
    with pytest.raises(ValueError, match="dimensions"):
        ssim(np.zeros(16), np.zeros(16))
