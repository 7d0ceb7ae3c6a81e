"""Deterministic stand-ins for Stable Diffusion's latents and VAE decoder (pure numpy).

A *latent* (``(1, 4, H/8, W/8)`` float32) is synthesised from the prompt's token ids, the seed,
the step count and the guidance scale: the prompt sets the palette and the spatial
frequencies, the seed the layout (phases, blob positions), guidance the contrast, and few
steps leave residual noise. :func:`decode` plays the VAE: a fixed 4 -> 3 projection (SDXL's
latent-to-RGB preview factors), bilinear 8x upsampling and a fine texture seeded by a hash of
the latent, through ``tanh`` into ``[-1, 1]``, shape ``(1, 3, H, W)``.

Same inputs give identical bytes; a different prompt or seed gives a clearly different image.
:func:`colour_blocks` (in the latent) and :func:`image_blocks` (in the decoder's output)
reproduce the corruption the seed describes ("colour blocks / garbage"): flat tiles on a grid
whose size (8-64 image pixels), offset, colours (black, white, grey, saturated, in range or
not) and area are drawn from the caller's generator, so no single look is taught; and
:func:`inject_nan` NaN pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

LATENT_CHANNELS = 4
VAE_SCALE = 8  # image pixels per latent pixel
# Colour-block tiles: 2..8 latent pixels when the latent is corrupted (16..64 image pixels),
# 8..64 image pixels when the decoder is.
BLOCK_LATENT_MIN, BLOCK_LATENT_MAX = 2, 8
BLOCK_IMAGE_MIN, BLOCK_IMAGE_MAX = 8, 64
WAVES = 10
BLOBS = 6
TEXTURE_STD = 0.035
DECODE_GAIN = 1.1
# SDXL latent -> RGB preview factors (as used by ComfyUI's latent previews) and bias.
LATENT_RGB = np.array([[0.3651, -0.2533, 0.1076, -0.3165],
                       [0.4232, -0.0042, 0.1111, -0.2492],
                       [0.4341, 0.1068, -0.0362, -0.2188]], dtype=np.float32)
LATENT_RGB_BIAS = np.array([0.1084, -0.0175, -0.0011], dtype=np.float32)
SATURATED_COLOURS = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, 1], [-1, 1, 1],
                              [1, 1, -1]], dtype=np.float32)
COLOUR_CLASSES = ("black", "white", "grey", "saturated", "in-range", "out-of-range")


def rng_for(*parts: object) -> np.random.Generator:
    """A generator seeded by a stable hash of ``parts`` (bytes are hashed as they are)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else repr(part).encode())
        digest.update(b"\x00")
    return np.random.default_rng(int.from_bytes(digest.digest()[:16], "little"))


def prompt_key(ids: npt.NDArray[np.int32]) -> bytes:
    """Identity of a conditioning input (token ids, or anything hashed into int32s)."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int32).tobytes()).digest()


def synth_latent(ids: npt.NDArray[np.int32], seed: int, steps: int, guidance: float,
                 height: int, width: int) -> F32:
    """The latent a pipeline would reach for this prompt, seed and schedule."""
    if height % VAE_SCALE or width % VAE_SCALE:
        raise ValueError(f"image size {width}x{height} is not a multiple of {VAE_SCALE}")
    h, w = height // VAE_SCALE, width // VAE_SCALE
    prompt = rng_for(b"prompt", prompt_key(ids))
    layout = rng_for(b"seed", seed)
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    lat = np.zeros((LATENT_CHANNELS, h, w), dtype=np.float32)
    lat += prompt.normal(0.0, 0.4, LATENT_CHANNELS).astype(np.float32)[:, None, None]
    for k in range(WAVES):
        fy, fx = prompt.uniform(0.5, 3.5, 2) * (1.0 + k / 5.0)
        amp = (prompt.normal(0.0, 1.0, LATENT_CHANNELS) / (1.0 + 0.4 * k)).astype(np.float32)
        phase_y, phase_x, angle = layout.uniform(0.0, 2.0 * np.pi, 3)
        u = xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle))
        v = yy * np.float32(np.cos(angle)) - xx * np.float32(np.sin(angle))
        wave = np.sin(2 * np.pi * fx * u + phase_x) * np.cos(2 * np.pi * fy * v + phase_y)
        lat += amp[:, None, None] * wave.astype(np.float32)[None]
    for _ in range(BLOBS):
        cy, cx = layout.uniform(0.15, 0.85, 2)
        radius = layout.uniform(0.05, 0.25)
        colour = prompt.normal(0.0, 1.2, LATENT_CHANNELS).astype(np.float32)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * radius**2))
        lat += colour[:, None, None] * blob.astype(np.float32)[None]
    lat *= np.float32(0.4 + 0.06 * min(max(guidance, 0.0), 15.0))
    detail = layout.standard_normal((LATENT_CHANNELS, h, w), dtype=np.float32)
    lat += detail * np.float32(0.6 / max(steps, 1))
    return lat[None].astype(np.float32)


def residual_noise(latent: F32, rng: np.random.Generator, amount: float) -> F32:
    """``latent`` with the noise left when a sampler stops early without x0 (``x_t``)."""
    noise = rng.standard_normal(latent.shape, dtype=np.float32) * np.float32(amount)
    return (latent + noise).astype(np.float32)


def block_colour(rng: np.random.Generator, kind: str) -> F32:
    """One RGB colour of a colour-class ``kind`` (see :data:`COLOUR_CLASSES`), in [-1, 1] units
    (``out-of-range`` goes beyond, as a decoder's unclipped float output does)."""
    if kind == "black":
        return np.full(3, -1.0, dtype=np.float32)
    if kind == "white":
        return np.full(3, 1.0, dtype=np.float32)
    if kind == "grey":
        return np.full(3, rng.uniform(-0.8, 0.8), dtype=np.float32)
    if kind == "saturated":
        return np.array(SATURATED_COLOURS[rng.integers(len(SATURATED_COLOURS))])
    if kind == "in-range":
        return rng.uniform(-0.9, 0.9, 3).astype(np.float32)
    if kind == "out-of-range":
        return (rng.choice([-1.0, 1.0], 3) * rng.uniform(1.2, 3.0, 3)).astype(np.float32)
    raise ValueError(f"unknown colour class {kind!r}; known: {', '.join(COLOUR_CLASSES)}")


def tile_cells(rng: np.random.Generator, height: int, width: int, tile: int,
               fraction: float) -> tuple[tuple[int, int], list[tuple[int, int, int, int]]]:
    """A grid of ``tile`` squares at a random offset, and the boxes ``(y0, x0, y1, x1)`` of
    cells drawn at random until about ``fraction`` of the area is covered (cut at the edges)."""
    oy, ox = (int(v) for v in rng.integers(0, tile, 2))
    ys = range(oy - tile if oy else 0, height, tile)
    xs = range(ox - tile if ox else 0, width, tile)
    cells = [(max(y, 0), max(x, 0), min(y + tile, height), min(x + tile, width))
             for y in ys for x in xs]
    cells = [c for c in cells if c[2] - c[0] >= tile // 2 and c[3] - c[1] >= tile // 2]
    order = rng.permutation(len(cells))
    want, area, chosen = fraction * height * width, 0, []
    for i in order:
        if area >= want:
            break
        y0, x0, y1, x1 = cells[i]
        chosen.append(cells[i])
        area += (y1 - y0) * (x1 - x0)
    return (oy, ox), chosen


def paint_tiles(chw: F32, rng: np.random.Generator, tile: int, fraction: float,
                kinds: Sequence[str] = COLOUR_CLASSES,
                colour_of: Callable[[F32], F32] | None = None
                ) -> tuple[F32, list[tuple[int, int, int, int]]]:
    """``chw`` (C, H, W) with flat tiles on a ``tile`` grid covering about ``fraction`` of it:
    each tile one colour of a class drawn from ``kinds``; ``colour_of`` maps an RGB colour to
    the array's channels (a latent's). Returns the array and the boxes painted."""
    out = chw.copy()
    _, height, width = out.shape
    _, boxes = tile_cells(rng, height, width, tile, fraction)
    for y0, x0, y1, x1 in boxes:
        colour = block_colour(rng, kinds[int(rng.integers(len(kinds)))])
        value = colour if colour_of is None else colour_of(colour)
        out[:, y0:y1, x0:x1] = value[:, None, None]
    return out, boxes


def latent_of_colour(rgb: F32) -> F32:
    """The latent vector :func:`decode` turns into ``rgb`` (clipped to what tanh can reach)."""
    pre = np.arctanh(np.clip(rgb, -0.995, 0.995)) / np.float32(DECODE_GAIN)
    pre = np.where(np.abs(rgb) > 1.0, pre * np.abs(rgb), pre)  # beyond range: drive harder
    return (np.linalg.pinv(LATENT_RGB) @ (pre - LATENT_RGB_BIAS)).astype(np.float32)


def colour_blocks(latent: F32, rng: np.random.Generator, area: tuple[float, float] = (0.03, 0.25)
                  ) -> F32:
    """``latent`` with flat tiles of 2..8 latent pixels (16..64 image pixels) at a random grid
    offset, of colours of every class, covering a share of ``area`` of it (all from ``rng``)."""
    tile = int(rng.integers(BLOCK_LATENT_MIN, BLOCK_LATENT_MAX + 1))
    blocked, _ = paint_tiles(latent[0], rng, tile, float(rng.uniform(*area)),
                             colour_of=latent_of_colour)
    return blocked[None]


def image_blocks(image: F32, rng: np.random.Generator, area: tuple[float, float] = (0.03, 0.25)
                 ) -> F32:
    """``image`` (1, 3, H, W) with flat tiles of 8..64 pixels painted over it (a decoder
    reusing stale buffers), colours of every class, at a random grid offset."""
    tile = int(rng.integers(BLOCK_IMAGE_MIN, BLOCK_IMAGE_MAX + 1))
    blocked, _ = paint_tiles(image[0], rng, tile, float(rng.uniform(*area)))
    return blocked[None]


def inject_nan(latent: F32, rng: np.random.Generator, count: int) -> F32:
    """``latent`` with ``count`` latent pixels (all channels) set to NaN."""
    out = latent.copy()
    _, _, h, w = out.shape
    for _ in range(count):
        out[0, :, rng.integers(h), rng.integers(w)] = np.nan
    return out


def _upsample_axis(x: F32, axis: int, factor: int) -> F32:
    """Bilinear upsampling along one axis (half-pixel centres, edges clamped)."""
    n = x.shape[axis]
    pos = (np.arange(n * factor, dtype=np.float32) + 0.5) / factor - 0.5
    lo = np.floor(pos)
    frac = (pos - lo).astype(np.float32)
    i0 = np.clip(lo.astype(np.int64), 0, n - 1)
    i1 = np.clip(i0 + 1, 0, n - 1)
    shape = [1] * x.ndim
    shape[axis] = n * factor
    a = np.take(x, i0, axis=axis)
    b = np.take(x, i1, axis=axis)
    return (a + (b - a) * frac.reshape(shape)).astype(np.float32)


def _flat_latent_pixels(lat: F32) -> npt.NDArray[np.bool_]:
    """Latent pixels inside a 2x2 (or larger) block of one exact vector (a sampled latent
    never has two equal neighbours: only a corrupted one does)."""
    same_x = np.zeros(lat.shape[1:], dtype=bool)
    same_y = np.zeros(lat.shape[1:], dtype=bool)
    eq_x = (lat[:, :, 1:] == lat[:, :, :-1]).all(axis=0)
    eq_y = (lat[:, 1:, :] == lat[:, :-1, :]).all(axis=0)
    same_x[:, 1:] |= eq_x
    same_x[:, :-1] |= eq_x
    same_y[1:, :] |= eq_y
    same_y[:-1, :] |= eq_y
    return same_x & same_y


def decode(latent: F32) -> F32:
    """The stand-in VAE: latent ``(1, 4, h, w)`` -> image ``(1, 3, 8h, 8w)`` in ``[-1, 1]``.

    NaN latent pixels become NaN 8x8 image patches (as a real decoder spreads them); a flat
    region of the latent (one exact vector) decodes to a flat tile, as a broken decoder's
    output collapses.
    """
    if latent.ndim != 4 or latent.shape[:2] != (1, LATENT_CHANNELS):
        raise ValueError(f"latent must be (1, 4, h, w), got {latent.shape}")
    lat = latent[0].astype(np.float32)
    nan_mask = np.isnan(lat).any(axis=0)
    if nan_mask.any():
        lat = np.where(np.isnan(lat), np.float32(0.0), lat)
    rgb = np.einsum("ck,khw->chw", LATENT_RGB, lat) + LATENT_RGB_BIAS[:, None, None]
    big = _upsample_axis(_upsample_axis(rgb.astype(np.float32), 1, VAE_SCALE), 2, VAE_SCALE)
    texture = rng_for(b"texture", hashlib.sha256(latent.tobytes()).digest())
    big += texture.standard_normal(big.shape, dtype=np.float32) * np.float32(TEXTURE_STD)
    flat = _flat_latent_pixels(lat)
    if flat.any():  # a constant latent region collapses to a flat tile of one colour
        big_flat = np.repeat(np.repeat(flat, VAE_SCALE, axis=0), VAE_SCALE, axis=1)
        nearest = np.repeat(np.repeat(rgb, VAE_SCALE, axis=1), VAE_SCALE, axis=2)
        big = np.where(big_flat[None], nearest, big).astype(np.float32)
    image: F32 = np.tanh(big * np.float32(DECODE_GAIN)).astype(np.float32)
    if nan_mask.any():
        big_mask = np.repeat(np.repeat(nan_mask, VAE_SCALE, axis=0), VAE_SCALE, axis=1)
        image[:, big_mask] = np.nan
    return image.reshape(1, *image.shape)


def to_rgb8(image: F32) -> npt.NDArray[np.uint8]:
    """The seed's qfp32 -> PNG conversion: ``x/2 + 0.5``, clip, x255, round, HWC uint8."""
    arr = np.nan_to_num(image[0], nan=0.0) / 2.0 + 0.5
    arr = np.clip(arr, 0.0, 1.0)
    return np.asarray((arr.transpose(1, 2, 0) * 255.0).round().astype(np.uint8))
