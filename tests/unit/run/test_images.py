"""qfp32 -> PNG: sizes, shapes, NaN/Inf, the exact mapping of -1, 0 and +1, latent previews."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import UsageError
from harness.run.images import (
    LATENT_RGB_BIAS,
    LATENT_RGB_FACTORS,
    convert_qfp32,
    infer_shape,
    kind_of,
    latent_to_rgb,
    qfp32_to_png,
    read_qfp32,
    to_uint8_hwc,
)


def write(path: Path, array: np.ndarray) -> Path:
    array.astype("<f4").tofile(path)
    return path


def test_read_checks_the_size_against_the_shape(tmp_path: Path) -> None:
    src = write(tmp_path / "x.qfp32", np.zeros((1, 3, 4, 4)))
    assert read_qfp32(src, (1, 3, 4, 4)).shape == (1, 3, 4, 4)
    with pytest.raises(UsageError, match=r"192 bytes, but shape \(1, 3, 8, 8\) needs 768"):
        read_qfp32(src, (1, 3, 8, 8))
    (tmp_path / "short").write_bytes(b"\0" * 191)
    with pytest.raises(UsageError, match="191 bytes"):
        read_qfp32(tmp_path / "short", (1, 3, 4, 4))


def test_read_is_little_endian_float32(tmp_path: Path) -> None:
    src = tmp_path / "le.qfp32"
    src.write_bytes(np.array([1.5, -2.0, 0.25], dtype="<f4").tobytes())
    assert read_qfp32(src, (3,)).tolist() == [1.5, -2.0, 0.25]


def test_exact_values_map_like_the_seed() -> None:
    # x/2 + 0.5, clip to [0, 1], * 255, round: -1 -> 0, 0 -> 128 (127.5 rounds to even), 1 -> 255
    values = np.array([-1.0, 0.0, 1.0, -3.0, 2.5, 2 / 255 - 1, 0.999], dtype=np.float32)
    img = np.broadcast_to(values, (3, 1, values.size)).astype(np.float32)
    rgb = to_uint8_hwc(img)
    assert rgb.shape == (1, values.size, 3) and rgb.dtype == np.uint8
    assert rgb[0, :, 0].tolist() == [0, 128, 255, 0, 255, 1, 255]
    assert rgb.flags["C_CONTIGUOUS"]


def test_nan_and_inf_pixels_become_black_and_white() -> None:
    img = np.zeros((1, 3, 1, 3), dtype=np.float32)
    img[0, :, 0, 0] = np.nan
    img[0, :, 0, 1] = np.inf
    img[0, :, 0, 2] = -np.inf
    assert to_uint8_hwc(img)[0].tolist() == [[0, 0, 0], [255, 255, 255], [0, 0, 0]]


def test_channel_order_is_kept_in_hwc() -> None:
    chw = np.full((3, 2, 2), -1.0, dtype=np.float32)
    chw[0] = 1.0  # red plane only
    chw[2, 1, 0] = 1.0  # one blue pixel at row 1, column 0
    rgb = to_uint8_hwc(chw)
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[1, 0].tolist() == [255, 0, 255]


def test_png_and_nan_inf_counts(tmp_path: Path) -> None:
    img = np.zeros((1, 3, 8, 16), dtype=np.float32)
    img[0, 0, 0, :5] = np.nan
    img[0, 1, 2, 3] = np.inf
    img[0, 2, 2, 3] = -np.inf
    stats = qfp32_to_png(write(tmp_path / "i.qfp32", img), (1, 3, 8, 16), tmp_path / "i.png")
    assert (stats.nan_count, stats.inf_count, stats.shape) == (5, 2, (1, 3, 8, 16))
    with Image.open(tmp_path / "i.png") as png:
        assert png.size == (16, 8) and png.mode == "RGB"


@pytest.mark.parametrize(("nbytes", "shape"), [
    (3 * 512 * 512 * 4, (1, 3, 512, 512)), (4 * 128 * 128 * 4, (1, 4, 128, 128))])
def test_infer_shape(nbytes: int, shape: tuple[int, ...]) -> None:
    assert infer_shape(nbytes) == shape


@pytest.mark.parametrize("nbytes", [0, -4, 6, 3 * 512 * 510 * 4, 5 * 4,
                                    3 * 4, 4 * 4])  # 1x1: no image a pipeline writes
def test_infer_shape_refuses(nbytes: int) -> None:
    with pytest.raises(UsageError):
        infer_shape(nbytes)


def test_kind_of() -> None:
    assert kind_of((1, 3, 8, 8)) == "image" and kind_of((3, 8, 8)) == "image"
    assert kind_of((1, 4, 8, 8)) == "latent" and kind_of((4, 8, 8)) == "latent"
    for bad in ((1, 1, 8, 8), (8, 8), (1, 2, 3, 4, 5)):
        with pytest.raises(UsageError, match="expected 3"):
            kind_of(bad)


def test_latent_preview_is_the_linear_map_plus_bias() -> None:
    lat = np.zeros((1, 4, 2, 2), dtype=np.float32)
    lat[0, 1] = 1.0  # only channel 1 set: RGB = row 1 of the factors + bias
    rgb = latent_to_rgb(lat, "sdxl")
    assert rgb.shape == (3, 2, 2) and rgb.dtype == np.float32
    want = np.add(LATENT_RGB_FACTORS["sdxl"][1], LATENT_RGB_BIAS["sdxl"])
    assert np.allclose(rgb[:, 0, 0], want)
    assert np.allclose(latent_to_rgb(lat[0], "sd15")[:, 1, 1], LATENT_RGB_FACTORS["sd15"][1])


def test_latent_preview_refuses_bad_input() -> None:
    with pytest.raises(UsageError, match="4 channels, not 3"):
        latent_to_rgb(np.zeros((1, 3, 2, 2), dtype=np.float32))
    with pytest.raises(UsageError, match="no latent preview for family 'sd3'"):
        latent_to_rgb(np.zeros((4, 2, 2), dtype=np.float32), "sd3")


def test_convert_infers_the_shape_and_previews_latents(tmp_path: Path) -> None:
    lat = np.zeros((1, 4, 16, 16), dtype=np.float32)
    lat[0, 0, 0, 0] = np.nan
    stats = convert_qfp32(write(tmp_path / "l.qfp32", lat), tmp_path / "l.png")
    assert stats.shape == (1, 4, 16, 16) and stats.nan_count == 1
    with Image.open(tmp_path / "l.png") as png:
        assert png.size == (16, 16)
        # a zero latent previews as the bias colour: x/2 + 0.5 of (0.1084, -0.0175, -0.0011)
        assert png.getpixel((5, 5)) == (141, 125, 127)
    img = convert_qfp32(write(tmp_path / "i.qfp32", np.ones((1, 3, 8, 8))), tmp_path / "i.png",
                        (1, 3, 8, 8))
    assert img.nan_count == 0
    with Image.open(tmp_path / "i.png") as png:
        assert png.getpixel((0, 0)) == (255, 255, 255)


def seed_conversion(image: np.ndarray) -> np.ndarray:
    """The conversion as it was before the in-place rewrite (nan_to_num, clip, round)."""
    chw = image[0] if image.ndim == 4 else image
    scaled = np.nan_to_num(chw / 2.0 + 0.5, nan=0.0, posinf=1.0, neginf=0.0)
    clipped = np.clip(scaled, 0.0, 1.0)
    return np.ascontiguousarray((clipped.transpose(1, 2, 0) * 255.0).round().astype(np.uint8))


def awkward_values(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """Random values in and far out of [-1, 1], NaN, +-inf, -0.0, the largest floats, and
    every value whose ``* 255`` lands on a half (where rounding to even shows)."""
    rng = np.random.default_rng(12)
    data: np.ndarray = rng.uniform(-1.5, 1.5, shape).astype(dtype)
    flat = data.reshape(-1)
    halves: np.ndarray = ((np.arange(255) + 0.5) / 255.0 * 2.0 - 1.0).astype(dtype)
    special: np.ndarray = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -1.0, 1.0, 3.0e38, -3.0e38,
                        1e-45, -1e-45, 2 / 255 - 1], dtype=dtype)
    picks = np.concatenate([special, halves, np.nextafter(halves, dtype(2)),
                            np.nextafter(halves, dtype(-2))])
    where = rng.choice(flat.size, size=picks.size * 20, replace=False)
    flat[where] = np.resize(picks, where.size)
    return data


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conversion_is_pixel_identical_to_the_seed_formula(dtype: type) -> None:
    data = awkward_values((1, 3, 64, 96), dtype)
    before = data.copy()
    got = to_uint8_hwc(data)
    assert got.dtype == np.uint8 and got.flags["C_CONTIGUOUS"]
    assert np.array_equal(got, seed_conversion(data))
    assert np.array_equal(data, before, equal_nan=True)  # the caller's array is untouched


def test_png_decodes_to_the_seed_formulas_pixels(tmp_path: Path) -> None:
    data = awkward_values((1, 3, 128, 64))
    stats = qfp32_to_png(write(tmp_path / "a.qfp32", data), (1, 3, 128, 64), tmp_path / "a.png")
    assert (stats.nan_count, stats.inf_count) == (int(np.isnan(data).sum()),
                                                  int(np.isinf(data).sum()))
    assert stats.nan_count > 0 and stats.inf_count > 0
    with Image.open(tmp_path / "a.png") as png:
        assert np.array_equal(np.asarray(png.convert("RGB")), seed_conversion(data))
    lat = awkward_values((1, 4, 64, 64))
    lstats = convert_qfp32(write(tmp_path / "l.qfp32", lat), tmp_path / "l.png")
    assert lstats.nan_count == int(np.isnan(lat).sum())
    with Image.open(tmp_path / "l.png") as png:
        assert np.array_equal(np.asarray(png.convert("RGB")),
                              seed_conversion(latent_to_rgb(lat, "sdxl")))
    clean = np.zeros((1, 3, 8, 8), dtype=np.float32)
    assert qfp32_to_png(write(tmp_path / "c.qfp32", clean), (1, 3, 8, 8),
                        tmp_path / "c.png").nan_count == 0
