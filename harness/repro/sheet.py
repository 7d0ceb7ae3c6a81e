"""A contact sheet: one thumbnail per sweep cell, labelled with its settings and verdict."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

THUMB_PX = 192  # thumbnail side; 1024 px outputs shrink 5x, enough to see colour blocks
LABEL_LINE_PX = 14
PAD_PX = 6
MAX_COLUMNS = 6
KIND_COLOURS = {"clean": (40, 140, 60), "blocks": (200, 120, 0), "nan": (160, 0, 160),
                "oom": (200, 30, 30), "failed": (200, 30, 30), "lost": (110, 110, 110),
                "mixed": (160, 140, 0)}


@dataclass(frozen=True)
class Tile:
    lines: tuple[str, ...]  # settings, one per line
    verdict: str  # the cell's label ("clean", "blocks 2/2", ...)
    kind: str  # for the colour of the verdict bar
    image: Path | None


def _wrap(text: str, width_chars: int) -> list[str]:
    return [text[i:i + width_chars] for i in range(0, len(text), width_chars)] or [""]


def write_sheet(tiles: Sequence[Tile], dest: Path, title: str = "") -> Path:
    """Draw ``tiles`` into one PNG at ``dest`` (written under a temporary name, then
    renamed, so a failed write leaves nothing)."""
    font = ImageFont.load_default()
    chars = THUMB_PX // 6
    texts = [[ln for line in t.lines for ln in _wrap(line, chars)]
             + _wrap(t.verdict, chars) for t in tiles]
    label_px = LABEL_LINE_PX * max((len(x) for x in texts), default=1) + PAD_PX
    columns = max(1, min(MAX_COLUMNS, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    cell_w, cell_h = THUMB_PX + 2 * PAD_PX, THUMB_PX + label_px + 2 * PAD_PX
    top = LABEL_LINE_PX + PAD_PX if title else 0
    sheet = Image.new("RGB", (columns * cell_w, top + rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD_PX, PAD_PX // 2), title[: columns * cell_w // 6], fill=(0, 0, 0),
                  font=font)
    for i, (tile, text) in enumerate(zip(tiles, texts, strict=True)):
        x = (i % columns) * cell_w + PAD_PX
        y = top + (i // columns) * cell_h + PAD_PX
        colour = KIND_COLOURS.get(tile.kind, (0, 0, 0))
        thumb = _thumbnail(tile.image)
        if thumb is None:
            draw.rectangle((x, y, x + THUMB_PX - 1, y + THUMB_PX - 1), fill=(225, 225, 225))
            draw.text((x + PAD_PX, y + THUMB_PX // 2), "no image", fill=(90, 90, 90),
                      font=font)
        else:
            sheet.paste(thumb, (x + (THUMB_PX - thumb.width) // 2,
                                y + (THUMB_PX - thumb.height) // 2))
        draw.rectangle((x, y, x + THUMB_PX - 1, y + THUMB_PX - 1), outline=colour, width=3)
        for n, line in enumerate(text):
            fill = colour if n >= len(text) - len(_wrap(tile.verdict, chars)) else (0, 0, 0)
            draw.text((x, y + THUMB_PX + 2 + n * LABEL_LINE_PX), line, fill=fill, font=font)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        sheet.save(tmp, format="PNG")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _thumbnail(path: Path | None) -> Image.Image | None:
    if path is None:
        return None
    try:
        with Image.open(path) as opened:
            img = opened.convert("RGB")
        img.thumbnail((THUMB_PX, THUMB_PX))
        return img
    except OSError:
        return None


__all__ = ["THUMB_PX", "Tile", "write_sheet"]
