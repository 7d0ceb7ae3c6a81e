"""Colour blocks: the corruption a broken decoder (TNN-reuse drift, ``x_t`` decoded at the last
step) leaves in an image or a latent, found from the failure itself.

The failure: parts of the output collapse to *flat tiles* on a grid: each tile holds one
value (exactly, or to within a rounding step), of any colour (black, white and grey as often
as saturated or out-of-range ones), and the tiles meet their neighbours in a sharp step.
Natural pictures have flat areas too (clipped sky, studio backgrounds, deep shadows, the flat
8x8 cells of a JPEG's smooth areas); what tells them apart, in order of the tests below:

1. *Constant, not smooth*: a 2x2 window is flat when all its values lie within ``eps``
   (a fraction of the value range; sensor noise and rendered texture exceed it), and a
   region of flat windows must hold one value overall (total range within ``2 eps``), so a
   slow gradient that is locally flat does not count.
2. *A tile, not a blob*: at least ``min_tile`` pixels on each side, and an outline made of
   straight axis-aligned runs (90 % of it in runs of 3/4 ``min_tile`` or more; a clipped
   highlight's outline is a staircase of short steps).
3. *A step, not a fade*: the pixels just outside differ from the tile's value by at least
   ``step`` (a JPEG's flat cells differ from each other by a level or two).
4. *Enough of it*: the verdict needs ``min_fraction`` of the area.

Images are ``(3, H, W)`` (or ``(1, 3, H, W)``) floats in ``[-1, 1]`` (values outside are
kept: an out-of-range tile is still a tile) or ``(H, W, 3)`` uint8; latents are ``(4, h, w)``
floats, normalised per channel by their own median and robust spread (MAD). NaN/Inf values
are counted and never part of a tile. The tile size reported is the largest size in
``[min_tile, max_tile]`` whose grid (at some offset) carries the tiles' edges.

Pure numpy (the connected regions are labelled here, as ``scipy.ndimage.label`` labels them:
importing scipy.ndimage costs ~0.3 s, more than a whole check); about 0.1-0.2 s for a
1024x1024 image (``benchmarks/detector.py``). The unit tests check :func:`label_regions`
and :func:`run_lengths` against scipy.ndimage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harness.errors import UsageError

F32 = npt.NDArray[np.float32]
Box = tuple[int, int, int, int]  # y0, x0, y1, x1 (end exclusive), in the array's pixels

IMAGE_CHANNELS = 3
LATENT_CHANNELS = 4
MAD_TO_STD = 1.4826


@dataclass(frozen=True)
class Params:
    """Thresholds, in units of the normalised values (images: [0, 1]; latents: robust std)."""

    eps: float  # a 2x2 window is flat when its values span at most this
    step: float  # the median jump from a tile to the pixels just outside it
    min_tile: int  # pixels per side, at least
    max_tile: int  # largest grid size searched for the tile size
    min_fraction: float = 0.002  # of the area, for a verdict
    min_run: float = 0.75  # a straight outline run, at least, in min_tile units
    min_straight: float = 0.9  # share of the outline in such runs


# 1.5/255: a uint8 rounding of a float that jitters by less than half a level stays flat.
IMAGE_PARAMS = Params(eps=1.5 / 255, step=8 / 255, min_tile=8, max_tile=64)
# Latent tiles of 2..8 latent pixels are 16..64 image pixels.
LATENT_PARAMS = Params(eps=2e-3, step=0.1, min_tile=2, max_tile=8)


@dataclass(frozen=True)
class BlockReport:
    """What :func:`find_blocks` found in one output."""

    kind: str  # "image" | "latent"
    height: int
    width: int
    boxes: tuple[Box, ...]
    flagged_px: int  # pixels inside the boxes (each counted once)
    tile_px: int | None  # tile size found (the array's pixels), None without boxes
    nan_count: int = 0
    inf_count: int = 0
    min_fraction: float = IMAGE_PARAMS.min_fraction
    mask: npt.NDArray[np.bool_] | None = field(default=None, repr=False, compare=False)

    @property
    def fraction(self) -> float:
        """The share of the area covered by flat tiles."""
        return self.flagged_px / (self.height * self.width) if self.height * self.width else 0.0

    @property
    def blocks(self) -> int:
        """The number of flat regions (a region may hold several same-coloured tiles)."""
        return len(self.boxes)

    @property
    def found(self) -> bool:
        """True when the output is corrupted by colour blocks."""
        return bool(self.boxes) and self.fraction >= self.min_fraction

    def describe(self) -> str:
        """One phrase for a verdict, e.g. ``colour blocks over 12.5 % of the image ...``."""
        return (f"colour blocks over {self.fraction * 100:.1f} % of the {self.kind} "
                f"({self.blocks} flat regions, tile {self.tile_px} px)")


def normalise_image(image: npt.NDArray[np.generic]) -> F32:
    """``(H, W, 3)`` values with 1.0 = full scale: uint8 / 255, float ``x / 2 + 0.5``."""
    arr = np.asarray(image)
    if arr.ndim == 4:
        arr = arr[0]
    if arr.ndim != 3:
        raise UsageError(f"an image is (3, H, W) or (H, W, 3), not {arr.shape}")
    if arr.shape[0] == IMAGE_CHANNELS and arr.shape[-1] != IMAGE_CHANNELS:
        arr = arr.transpose(1, 2, 0)
    x = arr.astype(np.float32)  # one copy (in the input's memory order); the rest in place
    if arr.dtype == np.uint8:
        x /= np.float32(255.0)
        return x
    x /= np.float32(2.0)
    x += np.float32(0.5)
    return x


def normalise_latent(latent: npt.NDArray[np.generic]) -> F32:
    """``(h, w, 4)``: each channel minus its median, over its robust spread (1.4826 MAD)."""
    arr = np.asarray(latent, dtype=np.float32)
    chw = arr[0] if arr.ndim == 4 else arr
    if chw.ndim != 3 or chw.shape[0] != LATENT_CHANNELS:
        raise UsageError(f"a latent is (4, h, w), not {arr.shape}")
    out = np.empty((*chw.shape[1:], LATENT_CHANNELS), dtype=np.float32)
    for c in range(LATENT_CHANNELS):
        chan = chw[c]
        finite = chan[np.isfinite(chan)]
        if finite.size == 0:
            out[..., c] = chan
            continue
        median = float(np.median(finite))
        spread = MAD_TO_STD * float(np.median(np.abs(finite - median)))
        if spread <= 0.0:
            spread = float(finite.std()) or 1.0
        out[..., c] = (chan - np.float32(median)) / np.float32(spread)
    return out


def find_image_blocks(image: npt.NDArray[np.generic]) -> BlockReport:
    """Colour blocks in an image (float in [-1, 1], CHW or NCHW; or HWC uint8)."""
    return find_blocks(normalise_image(image), IMAGE_PARAMS, "image")


def find_latent_blocks(latent: npt.NDArray[np.generic]) -> BlockReport:
    """Colour blocks in a ``(1, 4, h, w)`` latent, in its own value range."""
    return find_blocks(normalise_latent(latent), LATENT_PARAMS, "latent")


def find_output_blocks(data: npt.NDArray[np.generic], kind: str) -> BlockReport:
    """:func:`find_image_blocks` or :func:`find_latent_blocks`, by ``kind``."""
    return find_latent_blocks(data) if kind == "latent" else find_image_blocks(data)


def flat_windows(x: F32, eps: float) -> npt.NDArray[np.bool_]:
    """``(H-1, W-1)``: True where the 2x2 window at (i, j) spans at most ``eps`` everywhere.

    Vertical pairs first, then their horizontal pairs (4 passes for the windows' max and
    min), one subtraction in place, and the channels folded by elementwise maxima: a
    ``max(axis=2)`` over 3-4 channels costs more than all the rest.
    """
    upper, lower = x[:-1], x[1:]
    pair_max, pair_min = np.maximum(upper, lower), np.minimum(upper, lower)
    span = np.maximum(pair_max[:, :-1], pair_max[:, 1:])
    span -= np.minimum(pair_min[:, :-1], pair_min[:, 1:])
    widest = span[..., 0].copy()
    for c in range(1, span.shape[2]):
        np.maximum(widest, span[..., c], out=widest)
    return np.less_equal(widest, eps)  # NaN compares False (and inf - inf is NaN): never flat


def _bad_counts(x: F32) -> tuple[int, int]:
    """(NaN, Inf) counts; one pass when every value is finite (the usual case)."""
    if np.isfinite(x).all():
        return 0, 0
    return int(np.count_nonzero(np.isnan(x))), int(np.count_nonzero(np.isinf(x)))


def find_blocks(x: F32, params: Params, kind: str) -> BlockReport:
    """The core: flat tiles in a normalised ``(H, W, C)`` array."""
    height, width = x.shape[:2]
    nan_count, inf_count = _bad_counts(x)
    none = BlockReport(kind, height, width, (), 0, None, nan_count, inf_count,
                       params.min_fraction)
    if height < params.min_tile or width < params.min_tile:
        return none
    labels, count, slices = label_regions(flat_windows(x, params.eps))
    if count == 0:
        return none
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    big = np.flatnonzero(sizes >= (params.min_tile - 1) ** 2)
    covered = np.zeros((height, width), dtype=bool)
    boxes: list[Box] = []
    for label in big.tolist():
        rows, cols = slices[label - 1]
        if int(sizes[label]) == (rows.stop - rows.start) * (cols.stop - cols.start):
            box = _check_rectangle(x, (rows.start, cols.start, rows.stop + 1, cols.stop + 1),
                                   params)
            if box is not None:
                covered[box[0]:box[2], box[1]:box[3]] = True
                boxes.append(box)
            continue
        found = _check_region(x, labels, label, (rows, cols), params)
        if found is not None:
            box, extent = found
            covered[box[0]:box[2], box[1]:box[3]] |= extent
            boxes.append(box)
    if not boxes:
        return none
    return BlockReport(kind, height, width, tuple(sorted(boxes)), int(covered.sum()),
                       tile_size(boxes, height, width, params), nan_count, inf_count,
                       params.min_fraction, covered)


def _check_rectangle(x: F32, box: Box, params: Params) -> Box | None:
    """:func:`_check_region` for a region that fills its box (most tiles): tests 1 and 3."""
    y0, x0, y1, x1 = box
    if y1 - y0 < params.min_tile or x1 - x0 < params.min_tile:
        return None
    inside = x[y0:y1, x0:x1]
    if float((inside.max(axis=(0, 1)) - inside.min(axis=(0, 1))).max()) > 2 * params.eps:
        return None
    height, width = x.shape[:2]
    strips = [x[y0 - 1, x0:x1]] if y0 > 0 else []
    strips += [x[y1, x0:x1]] if y1 < height else []
    strips += [x[y0:y1, x0 - 1]] if x0 > 0 else []
    strips += [x[y0:y1, x1]] if x1 < width else []
    if not strips:
        return box  # the whole picture is one flat tile
    outside = np.concatenate(strips)
    outside = outside[np.isfinite(outside).all(axis=1)]
    if outside.size and float(np.median(np.abs(outside - inside[0, 0]).max(axis=1))) < (
            params.step):
        return None
    return box


def _check_region(x: F32, labels: npt.NDArray[np.int32], label: int,
                  where: tuple[slice, slice], params: Params
                  ) -> tuple[Box, npt.NDArray[np.bool_]] | None:
    """The region's box and pixel mask when it passes tests 1-3, else None."""
    windows = labels[where] == label
    h, w = windows.shape
    if h + 1 < params.min_tile or w + 1 < params.min_tile:
        return None
    extent = np.zeros((h + 1, w + 1), dtype=bool)  # the pixels the 2x2 windows cover
    for dy in (0, 1):
        for dx in (0, 1):
            extent[dy:dy + h, dx:dx + w] |= windows
    y0, x0 = where[0].start, where[1].start
    box = (y0, x0, y0 + h + 1, x0 + w + 1)
    inside = x[box[0]:box[2], box[1]:box[3]][extent]
    if float((inside.max(axis=0) - inside.min(axis=0)).max()) > 2 * params.eps:
        return None  # 1: locally flat but not one value (a gradient)
    if _straight_share(extent, params.min_run * params.min_tile) < params.min_straight:
        return None  # 2: a blob's outline
    if _step(x, box, extent, inside.mean(axis=0)) < params.step:
        return None  # 3: fades into its surroundings
    return box, extent


def _straight_share(extent: npt.NDArray[np.bool_], run: float) -> float:
    """The share of the outline in straight runs of at least ``run`` pixels: all of it for a
    union of tiles, little for a natural outline (a staircase of short steps)."""
    padded = np.pad(extent, 1)
    rows = padded[1:, :] != padded[:-1, :]  # edges between vertically adjacent pixels
    cols = padded[:, 1:] != padded[:, :-1]
    total = straight = 0
    for lengths in (run_lengths(rows), run_lengths(cols.T)):
        total += int(lengths.sum())
        straight += int(lengths[lengths >= run].sum())
    return straight / total if total else 0.0


def _step(x: F32, box: Box, extent: npt.NDArray[np.bool_], value: F32) -> float:
    """Median over the ring just outside the region of the largest channel jump."""
    height, width = x.shape[:2]
    y0, x0 = max(box[0] - 1, 0), max(box[1] - 1, 0)
    y1, x1 = min(box[2] + 1, height), min(box[3] + 1, width)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    mask[box[0] - y0:box[0] - y0 + extent.shape[0],
         box[1] - x0:box[1] - x0 + extent.shape[1]] = extent
    ring = dilate(mask) & ~mask
    outside = x[y0:y1, x0:x1][ring]
    outside = outside[np.isfinite(outside).all(axis=1)]
    if outside.size == 0:
        return float("inf")  # the whole picture is one flat tile
    return float(np.median(np.abs(outside - value).max(axis=1)))


# ---- connected regions in numpy (as scipy.ndimage labels them) ----------------------------

def _row_runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], ...]:
    """(row, first column, end column) of every run of True along the rows, raster order."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)
    rows, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)  # row-major too: the n-th end closes the n-th run
    return rows, starts, ends


def run_lengths(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """Lengths of the runs of True along each row (``ndimage.label`` with a one-row
    structure, then the size of each label)."""
    _, starts, ends = _row_runs(mask)
    return ends - starts


def label_regions(mask: npt.NDArray[np.bool_]
                  ) -> tuple[npt.NDArray[np.int32], int, list[tuple[slice, slice]]]:
    """``scipy.ndimage.label(mask)`` and ``find_objects``: 4-connected regions numbered 1..
    in the raster order of their first pixel (0: background), their count, and the box of
    each (row slice, column slice).

    Runs along the rows are the nodes; runs touching in adjacent rows are joined by
    hooking each root to the smaller one and halving paths until nothing moves (the
    smallest run id of a region, its first run in raster order, ends as its root).
    """
    h, w = mask.shape
    rows, starts, ends = _row_runs(mask)
    n = len(rows)
    if n == 0:
        return np.zeros((h, w), dtype=np.int32), 0, []
    marks = np.zeros((h, w), dtype=np.int32)
    marks[rows, starts] = np.arange(1, n + 1, dtype=np.int32)
    run_id = np.maximum.accumulate(marks, axis=1) * mask  # ids rise along a row
    upper, lower = run_id[:-1], run_id[1:]
    touching = mask[:-1] & mask[1:]
    # one pixel per pair of touching runs: where the pair differs from the pixel to its left
    first = touching.copy()
    first[:, 1:] &= ~(touching[:, :-1] & (upper[:, 1:] == upper[:, :-1])
                      & (lower[:, 1:] == lower[:, :-1]))
    a, b = upper[first], lower[first]
    parent = np.arange(n + 1, dtype=np.int32)
    while a.size:
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            break
        low = np.minimum(pa, pb)
        np.minimum.at(parent, pa, low)
        np.minimum.at(parent, pb, low)
        while True:  # compress: every node points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots, order = np.unique(parent[1:], return_inverse=True)
    count = len(roots)
    which = order.ravel()  # each run's region, 0-based
    number = np.concatenate([[0], which + 1]).astype(np.int32)
    top = np.full(count, h, dtype=np.intp)
    left = np.full(count, w, dtype=np.intp)
    bottom = np.zeros(count, dtype=np.intp)
    right = np.zeros(count, dtype=np.intp)
    np.minimum.at(top, which, rows)
    np.minimum.at(left, which, starts)
    np.maximum.at(bottom, which, rows + 1)
    np.maximum.at(right, which, ends)
    boxes = [(slice(t, bt), slice(lf, r)) for t, bt, lf, r
             in zip(top.tolist(), bottom.tolist(), left.tolist(), right.tolist(), strict=True)]
    return number[run_id], count, boxes


def dilate(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """``scipy.ndimage.binary_dilation(mask)``: one step of the 4-neighbour cross."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def tile_size(boxes: list[Box], height: int, width: int, params: Params) -> int:
    """The largest grid size in range on which (nearly) all inner box edges lie."""
    ys = [e for b in boxes for e in (b[0], b[2]) if 0 < e < height]
    xs = [e for b in boxes for e in (b[1], b[3]) if 0 < e < width]
    for size in range(params.max_tile, params.min_tile - 1, -1):
        if _on_grid(ys, size) and _on_grid(xs, size):
            return size
    sides = [min(b[2] - b[0], b[3] - b[1]) for b in boxes]
    return int(np.median(sides))


def _on_grid(edges: list[int], size: int) -> bool:
    """Whether 90 % of ``edges`` lie on the grid lines of one offset."""
    if not edges:
        return True
    best = int(np.bincount(np.asarray(edges) % size).max())
    return best >= 0.9 * len(edges)


def write_overlay(report: BlockReport, picture: Path, dest: Path) -> Path:
    """``picture`` (the output's PNG) with the blocks' boxes drawn, saved to ``dest``."""
    from PIL import Image, ImageDraw  # here only: a check that finds nothing never draws
    with Image.open(picture) as img:
        base = img.convert("RGB")
    sy, sx = base.height / report.height, base.width / report.width
    dim = Image.blend(base, Image.new("RGB", base.size), 0.35)
    draw = ImageDraw.Draw(dim)
    for y0, x0, y1, x1 in report.boxes:
        draw.rectangle((x0 * sx, y0 * sy, x1 * sx - 1, y1 * sy - 1), outline=(255, 0, 255),
                       width=max(1, round(2 * sx)))
    dim.save(dest)
    return dest
