"""Thumbnails: small JPEG data: URIs, None when the picture is gone."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from harness.report.thumbs import THUMB_SIDE_PX, thumbnail_uri


def test_thumbnail_of_a_big_png(tmp_path: Path) -> None:
    png = tmp_path / "out.png"
    pixels = np.random.default_rng(1).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(png)
    uri = thumbnail_uri(png)
    assert uri and uri.startswith("data:image/jpeg;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG" and max(img.size) == THUMB_SIDE_PX
    assert len(data) < 120_000  # noise is the worst case for JPEG


def test_missing_or_broken_pictures(tmp_path: Path) -> None:
    assert thumbnail_uri(None) is None
    assert thumbnail_uri(tmp_path / "gone.png") is None
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert thumbnail_uri(broken) is None
