"""Output thumbnails as ``data:`` URIs, so the HTML report needs no file beside it.

A 1024x1024 PNG is ~1-2 MB; a 256-pixel JPEG of it is ~10-20 kB, small enough for every
output of a night's bench (3 phones x 2 recipes x 6 runs) to stay well under the report's
5 MB. A missing or unreadable file gives None (the report says so) rather than an error:
run folders are often cleaned up before their results are.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

THUMB_SIDE_PX = 256
JPEG_QUALITY = 82  # colour-block tiles and the overlay's magenta boxes stay clearly visible


def thumbnail_uri(path: str | Path | None, side: int = THUMB_SIDE_PX) -> str | None:
    """A JPEG thumbnail of the picture at ``path`` as a ``data:image/jpeg;base64,`` URI."""
    if not path:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB", (side, side))  # JPEG sources decode at a reduced size
            picture = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
