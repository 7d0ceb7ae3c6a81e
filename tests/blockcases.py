"""Material for calibrating the colour-block detector that this project did not make.

``PHOTOS`` are natural photographs shipped inside the scikit-image wheel (read from the
package's own folder: nothing is downloaded). ``corrupt`` paints a grid of flat tiles over one
(the sim's :func:`harness.sim.imagegen.paint_tiles`, with the tile size, colour class and area
given, the grid offset and the cells drawn at random), returning the true mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from harness.sim import imagegen

# Natural photographs in skimage/data (not the synthetic ones: checkerboards, logo, text).
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "brick",
          "gravel", "grass", "hubble_deep_field", "retina", "ihc", "motorcycle_left",
          "motorcycle_right", "page", "cell", "clock_motion", "microaneurysms")
# Backgrounds for painted corruption: not retina (a huge exactly-black surround, which tiles
# cut into grid-aligned flat pieces) nor microaneurysms (102 px: a tile or two).
BACKGROUNDS = tuple(p for p in PHOTOS if p not in ("retina", "microaneurysms"))
TILES = (8, 12, 16, 24, 32, 48, 64)
AREAS = (0.02, 0.1, 0.4)


def photo_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def load_photo(name: str) -> npt.NDArray[np.uint8]:
    """``(H, W, 3)`` uint8 (grey photographs repeated over three channels)."""
    path = next(p for p in photo_dir().iterdir() if p.stem == name)
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def to_chw(photo: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """uint8 HWC -> float (3, H, W) in [-1, 1], like a decoder's output."""
    return (photo.astype(np.float32).transpose(2, 0, 1) / np.float32(127.5) - 1).astype(
        np.float32)


def corrupt(photo: npt.NDArray[np.uint8], tile: int, kind: str, area: float,
            seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """The photo as a float image with flat ``kind`` tiles over about ``area``; true mask."""
    rng = np.random.default_rng(seed)
    image, boxes = imagegen.paint_tiles(to_chw(photo), rng, tile, area, (kind,))
    mask = np.zeros(image.shape[1:], dtype=bool)
    for y0, x0, y1, x1 in boxes:
        mask[y0:y1, x0:x1] = True
    return image, mask
