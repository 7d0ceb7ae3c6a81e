"""Output drift over nights: each run's image against its series' reference image.

For a series with a fixed prompt and seed (the run's params carry a non-null ``seed``; the
prompt and every other parameter are part of the series because runs are grouped by their
exact params) the first valid image ever stored is the reference; every later valid image is
compared with it by :func:`harness.bench.quality.compare_output` (PSNR and SSIM). Images are
the PNGs the runs converted (``outputs.png_path`` on this host); a missing file is skipped
and said so. Bit-identical images (the same build, seed and prompt: the normal case) are
recognised by comparing the pixels first, without computing SSIM.

Pure except for reading PNG files; :mod:`harness.bench.history` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from harness.bench.quality import QualityResult, compare_output

Pixels = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ImageCheck:
    """One run's image against the reference (None: the image could not be read)."""

    run_id: str
    result: QualityResult | None
    problem: str = ""


class ImageCache:
    """Decoded PNGs by path, read once per analysis."""

    def __init__(self) -> None:
        self._pixels: dict[str, Pixels | None] = {}

    def get(self, path: str | None) -> Pixels | None:
        if path is None:
            return None
        if path not in self._pixels:
            try:
                with Image.open(Path(path)) as img:
                    self._pixels[path] = np.asarray(img.convert("RGB"), dtype=np.uint8)
            except (OSError, ValueError):
                self._pixels[path] = None
        return self._pixels[path]


IDENTICAL = QualityResult(float("inf"), 1.0, "ok", "matches the reference (identical)")


def check_image(cache: ImageCache, run_id: str, reference: str, image: str | None,
                min_ssim: float, min_psnr_db: float) -> ImageCheck:
    """Compare the image at ``image`` with the one at ``reference``."""
    ref, img = cache.get(reference), cache.get(image)
    if ref is None:
        return ImageCheck(run_id, None, f"reference image {reference} cannot be read")
    if img is None:
        return ImageCheck(run_id, None, f"image {image} cannot be read")
    if ref.shape != img.shape:
        return ImageCheck(run_id, QualityResult(
            0.0, 0.0, "quality", f"output drifted: shape {img.shape} is not the "
                                 f"reference's {ref.shape}"))
    if np.array_equal(ref, img):
        return ImageCheck(run_id, IDENTICAL)
    return ImageCheck(run_id, compare_output(ref, img, min_ssim=min_ssim,
                                             min_psnr_db=min_psnr_db))
