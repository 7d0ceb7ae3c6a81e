"""qfp32 tensors (raw float32, NCHW) and their conversion to PNG, as the seed does it.

The VAE output is float32 ``(1, 3, H, W)`` in ``[-1, 1]``: ``x/2 + 0.5``, clip to ``[0, 1]``,
times 255, round, uint8, HWC, PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from harness.errors import UsageError

FLOAT32_BYTES = 4


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
    """``(1, 3, H, W)`` or ``(3, H, W)`` in [-1, 1] -> ``(H, W, 3)`` uint8 (NaN -> 0)."""
    chw = image[0] if image.ndim == 4 else image
    scaled = np.nan_to_num(chw / 2.0 + 0.5, nan=0.0, posinf=1.0, neginf=0.0)
    clipped = np.clip(scaled, 0.0, 1.0)
    return np.ascontiguousarray((clipped.transpose(1, 2, 0) * 255.0).round().astype(np.uint8))


def qfp32_to_png(src: Path, shape: tuple[int, ...], dest: Path) -> ImageStats:
    """Convert one qfp32 image file to PNG; NaN/Inf pixels are counted and reported."""
    data = read_qfp32(src, shape)
    stats = ImageStats(shape, int(np.isnan(data).sum()), int(np.isinf(data).sum()))
    Image.fromarray(to_uint8_hwc(data)).save(dest)
    return stats
