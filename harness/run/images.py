"""qfp32 tensors (raw float32, NCHW) and their conversion to PNG, as the seed does it.

The VAE output is float32 ``(1, 3, H, W)`` in ``[-1, 1]``: ``x/2 + 0.5``, clip to ``[0, 1]``,
times 255, round, uint8, HWC, PNG.

Latents ``(1, 4, h, w)`` get a preview PNG through the usual linear latent -> RGB
approximation (one 4 x 3 matrix plus a bias per model family), mapped from ``[-1, 1]`` like
an image. It shows composition and colour blocks; it is not a decode.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from harness.errors import UsageError

FLOAT32_BYTES = 4
IMAGE_CHANNELS = 3
LATENT_CHANNELS = 4
PNG_LEVEL = 1  # zlib level (RLE searches no matches: the level hardly matters)

# Linear latent -> RGB approximations (rows: latent channels; columns: R, G, B), as used
# by common SD tools for previews.
LATENT_RGB_FACTORS = {
    "sdxl": ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068),
             (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
    "sd15": ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
             (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)),
}
LATENT_RGB_BIAS = {"sdxl": (0.1084, -0.0175, -0.0011), "sd15": (0.0, 0.0, 0.0)}


@dataclass(frozen=True)
class ImageStats:
    """What a conversion found in the tensor besides the picture."""

    shape: tuple[int, ...]
    nan_count: int
    inf_count: int


def read_qfp32(path: Path, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """Read a raw float32 file and check it holds exactly ``shape``."""
    want = int(np.prod(shape)) * FLOAT32_BYTES
    size = path.stat().st_size
    if size != want:
        raise UsageError(f"{path}: {size} bytes, but shape {shape} needs {want} bytes")
    return np.fromfile(path, dtype="<f4").reshape(shape)


def to_uint8_hwc(image: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """``(1, 3, H, W)`` or ``(3, H, W)`` in [-1, 1] -> ``(H, W, 3)`` uint8 (NaN -> 0).

    The seed's ``x/2 + 0.5``, clip to [0, 1], ``* 255``, round, in the input's float type, in
    place in one working copy (the first step makes it): ``fmax``/``fmin`` clip and send NaN
    to 0 (and -inf to 0, +inf to 1) in the same two passes; the last pass casts and
    transposes together.
    """
    chw = image[0] if image.ndim == 4 else image
    x = np.divide(chw, 2.0)  # a new array; the caller's is left alone
    np.add(x, 0.5, out=x)
    np.fmax(x, 0.0, out=x)  # NaN -> 0: fmax ignores a NaN
    np.fmin(x, 1.0, out=x)
    np.multiply(x, 255.0, out=x)
    np.rint(x, out=x)  # what round() does: half to even
    out = np.empty((*x.shape[1:], x.shape[0]), dtype=np.uint8)
    np.copyto(out, x.transpose(1, 2, 0), casting="unsafe")  # whole numbers in [0, 255]
    return out


def _bad_counts(data: npt.NDArray[np.float32]) -> tuple[int, int]:
    """(NaN, Inf) counts; one pass when every value is finite (the usual case)."""
    if np.isfinite(data).all():
        return 0, 0
    return int(np.count_nonzero(np.isnan(data))), int(np.count_nonzero(np.isinf(data)))


def qfp32_to_png(src: Path, shape: tuple[int, ...], dest: Path) -> ImageStats:
    """Convert one qfp32 image file to PNG; NaN/Inf pixels are counted and reported."""
    data = read_qfp32(src, shape)
    stats = ImageStats(shape, *_bad_counts(data))
    _save_png(to_uint8_hwc(data), dest)
    return stats


def latent_to_rgb(latent: npt.NDArray[np.float32],
                  family: str = "sdxl") -> npt.NDArray[np.float32]:
    """``(1, 4, h, w)`` or ``(4, h, w)`` latent -> ``(3, h, w)`` approximate RGB in ~[-1, 1]."""
    chw = latent[0] if latent.ndim == 4 else latent
    if chw.shape[0] != LATENT_CHANNELS:
        raise UsageError(f"a latent has {LATENT_CHANNELS} channels, not {chw.shape[0]}")
    if family not in LATENT_RGB_FACTORS:
        raise UsageError(f"no latent preview for family {family!r}; known: "
                         f"{', '.join(LATENT_RGB_FACTORS)}")
    factors = np.asarray(LATENT_RGB_FACTORS[family], dtype=np.float32)
    bias = np.asarray(LATENT_RGB_BIAS[family], dtype=np.float32)
    rgb: npt.NDArray[np.float32] = np.einsum("chw,cr->rhw", chw, factors).astype(np.float32)
    return rgb + bias[:, None, None]


# Sizes inferred without --shape: square images whose side is a multiple of 64 (what SD
# pipelines make) and their latents (side / 8). Anything else, e.g. a truncated file that
# happens to hold a square number of values, is refused rather than drawn scrambled.
IMAGE_SIDE_STEP = 64
MAX_IMAGE_SIDE = 2048
LATENT_SCALE = 8


def _supported_side(channels: int, side: int) -> bool:
    image_side = side if channels == IMAGE_CHANNELS else side * LATENT_SCALE
    return 0 < image_side <= MAX_IMAGE_SIDE and image_side % IMAGE_SIDE_STEP == 0


def infer_shape(nbytes: int) -> tuple[int, int, int, int]:
    """The shape of a square 3-channel image or 4-channel latent of ``nbytes`` float32 bytes.

    ``3 s^2 = 4 t^2`` has no integer solution, so at most one of the two fits; the side must
    also be one SD makes (:func:`_supported_side`).
    """
    if nbytes <= 0 or nbytes % FLOAT32_BYTES:
        raise UsageError(f"{nbytes} bytes is not a whole number of float32 values "
                         "(a truncated file?)")
    count = nbytes // FLOAT32_BYTES
    for channels in (IMAGE_CHANNELS, LATENT_CHANNELS):
        if count % channels == 0:
            side = math.isqrt(count // channels)
            if side * side * channels == count and _supported_side(channels, side):
                return (1, channels, side, side)
    raise UsageError(f"{nbytes} bytes is not the size of a square image (side a multiple of "
                     f"{IMAGE_SIDE_STEP}) or of its latent (a truncated file?); give --shape "
                     "1,C,H,W")


def kind_of(shape: tuple[int, ...]) -> str:
    """"image" for 3 channels, "latent" for 4 (NCHW or CHW)."""
    channels = shape[1] if len(shape) == 4 else shape[0] if len(shape) == 3 else 0
    if channels == IMAGE_CHANNELS:
        return "image"
    if channels == LATENT_CHANNELS:
        return "latent"
    raise UsageError(f"shape {shape}: expected 3 (image) or 4 (latent) channels")


def convert_qfp32(src: Path, dest: Path, shape: tuple[int, ...] | None = None,
                  family: str = "sdxl") -> ImageStats:
    """Image or latent qfp32 -> PNG (shape inferred from the size when not given)."""
    shape = shape or infer_shape(src.stat().st_size)
    if kind_of(shape) == "image":
        return qfp32_to_png(src, shape, dest)
    data = read_qfp32(src, shape)
    stats = ImageStats(shape, *_bad_counts(data))
    _save_png(to_uint8_hwc(latent_to_rgb(data, family)), dest)
    return stats


def _save_png(pixels: npt.NDArray[np.uint8], dest: Path) -> None:
    """Always PNG, whatever ``dest`` is called; a missing folder is a usage error.

    zlib's run-length strategy: with Pillow's defaults (level 6, filtered) a 1024x1024
    conversion took 1.6x (noise) to 5x (a smooth picture) the CPU, for files no smaller
    (``benchmarks/run.py``). The pixels are the same: PNG is lossless.
    """
    if not dest.parent.is_dir():
        raise UsageError(f"{dest}: the folder {dest.parent} does not exist")
    Image.fromarray(pixels).save(dest, format="PNG", compress_level=PNG_LEVEL,
                                 compress_type=zlib.Z_RLE)
