"""The colour-block detector, calibrated on material we did not make (scikit-image's
photographs) and on a grid of synthetic corruptions, plus the virtual phone's clean output."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.run import blocks
from harness.run.diagnose import diagnose_output
from harness.sim import assets, imagegen
from tests.blockcases import AREAS, BACKGROUNDS, PHOTOS, TILES, corrupt, load_photo, to_chw

PROMPTS = ("a red fox", "a lighthouse on a cliff at sunset, oil painting",
           "portrait of an old man, studio lighting, plain grey background",
           "a clear blue sky", "black cat in the dark", "snowy field")


def ids(prompt: str) -> np.ndarray:
    return np.concatenate([assets.demo_token_ids(prompt).ravel(),
                           assets.demo_token_ids(prompt, 0).ravel()])


def clean_latent(prompt: str, seed: int, size: int = 512) -> np.ndarray:
    return imagegen.synth_latent(ids(prompt), seed, 20, 7.5, size, size)


# ---- no false positives --------------------------------------------------------------------

@pytest.mark.parametrize("name", PHOTOS)
def test_photographs_have_no_colour_blocks(name: str) -> None:
    photo = load_photo(name)
    for image in (photo, to_chw(photo)):
        report = blocks.find_image_blocks(image)
        assert report.boxes == () and not report.found, (name, report)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_clean_virtual_phone_outputs_have_no_colour_blocks(prompt: str) -> None:
    for seed in range(4):
        latent = clean_latent(prompt, seed)
        image = imagegen.decode(latent)
        assert blocks.find_latent_blocks(latent).boxes == (), (prompt, seed)
        assert blocks.find_image_blocks(image).boxes == (), (prompt, seed)
        assert blocks.find_image_blocks(imagegen.to_rgb8(image)).boxes == (), (prompt, seed)


def test_natural_flat_areas_are_not_blocks() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32) / 256
    sky = np.stack([0.2 + 0.5 * yy, 0.4 + 0.3 * yy, 0.9 - 0.1 * xx]) * 2 - 1
    assert not blocks.find_image_blocks(sky.astype(np.float32)).boxes  # 1: a gradient
    disc = np.where((yy - 0.5) ** 2 + (xx - 0.5) ** 2 < 0.1, 1.0, -0.2)
    noisy = disc + rng.normal(0, 0.05, disc.shape) * (disc < 1)
    clipped = np.repeat(noisy[None], 3, axis=0).astype(np.float32)
    assert not blocks.find_image_blocks(clipped).boxes  # 2: a clipped highlight, round
    cells = rng.integers(118, 122, (32, 32)).astype(np.uint8)  # a JPEG's flat 8x8 cells
    jpeg = np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1)
    assert not blocks.find_image_blocks(np.stack([jpeg] * 3, axis=2)).boxes  # 3: no step
    square = np.full((3, 256, 256), 0.1, dtype=np.float32)
    square += rng.normal(0, 0.03, square.shape).astype(np.float32)
    square[:, 64:128, 64:128] = 0.8
    assert blocks.find_image_blocks(square).found  # the same with a step: one tile


# ---- detection across a grid of corruptions -------------------------------------------------

@pytest.mark.parametrize("tile", TILES)
def test_synthetic_corruptions_on_photographs_are_found(tile: int) -> None:
    photos = {name: load_photo(name) for name in BACKGROUNDS}
    cases = itertools.product(imagegen.COLOUR_CLASSES, AREAS)
    for i, (kind, area) in enumerate(cases):
        name = BACKGROUNDS[(i + tile) % len(BACKGROUNDS)]
        image, truth = corrupt(photos[name], tile, kind, area, seed=1000 * tile + i)
        report = blocks.find_image_blocks(image)
        assert report.found and report.mask is not None, (name, kind, area)
        hit = int((report.mask & truth).sum())
        # Black or white tiles merge with a photo's clipped shadows and highlights of the
        # same value (astronaut: 11 % is exactly black); the merged region is not a tile.
        share = 0.4 if kind in ("black", "white") else 0.7
        assert hit >= share * truth.sum(), (name, kind, area, hit / truth.sum())
        assert hit >= 0.95 * report.mask.sum(), (name, kind, area)
        assert report.tile_px == tile, (name, kind, area, report.tile_px)
        assert report.fraction == pytest.approx(report.mask.mean())


def test_uint8_and_out_of_range_float_tiles_are_found() -> None:
    image, _ = corrupt(load_photo("coffee"), 24, "grey", 0.1, seed=5)
    as_png = np.asarray(Image.fromarray(imagegen.to_rgb8(image[None])))
    report = blocks.find_image_blocks(as_png)
    assert report.found and report.tile_px == 24
    hot, _ = corrupt(load_photo("coffee"), 16, "out-of-range", 0.05, seed=6)
    assert float(hot.max()) > 1.0 and blocks.find_image_blocks(hot).found


@pytest.mark.parametrize("seed", range(6))
def test_latent_blocks_are_found_in_the_latent_and_after_decoding(seed: int) -> None:
    latent = clean_latent(PROMPTS[seed], seed, 1024 if seed == 0 else 512)
    blocked = imagegen.colour_blocks(latent, imagegen.rng_for("test-latent", seed))
    report = blocks.find_latent_blocks(blocked)
    assert report.found and report.kind == "latent"
    assert report.tile_px is not None and 2 <= report.tile_px <= 8
    decoded = blocks.find_image_blocks(imagegen.decode(blocked))
    assert decoded.found and decoded.tile_px == 8 * report.tile_px


def test_latent_is_normalised_by_its_own_spread() -> None:
    latent = clean_latent("a red fox", 1)
    blocked = imagegen.colour_blocks(latent, imagegen.rng_for("scale"))
    for scale in (1e-3, 1.0, 1e3):
        assert blocks.find_latent_blocks(blocked * np.float32(scale)).found
        assert not blocks.find_latent_blocks(latent * np.float32(scale)).boxes


def test_nan_and_inf_are_counted_not_taken_for_blocks() -> None:
    latent = clean_latent("a red fox", 2)
    image = imagegen.decode(imagegen.inject_nan(latent, imagegen.rng_for("nan"), 3))
    image[0, 0, 5, 5] = np.inf
    report = blocks.find_image_blocks(image)
    assert report.nan_count >= 3 * 64 * 3 and report.inf_count == 1
    assert not report.boxes


def test_a_flat_picture_is_all_block() -> None:
    report = blocks.find_image_blocks(np.full((3, 128, 128), 0.3, dtype=np.float32))
    assert report.found and report.fraction == 1.0


# ---- what the runner does with a report ----------------------------------------------------

def test_overlay_marks_the_boxes(tmp_path: Path) -> None:
    image, _ = corrupt(load_photo("chelsea"), 32, "saturated", 0.1, seed=3)
    report = blocks.find_image_blocks(image)
    png = tmp_path / "image.png"
    Image.fromarray(imagegen.to_rgb8(image[None])).save(png)
    out = blocks.write_overlay(report, png, tmp_path / "image.blocks.png")
    marked = np.asarray(Image.open(out))
    assert marked.shape == (image.shape[1], image.shape[2], 3)
    y0, x0, _, _ = report.boxes[0]
    assert tuple(marked[y0, x0]) == (255, 0, 255)


def test_verdict_names_fraction_and_tile() -> None:
    image, _ = corrupt(load_photo("astronaut"), 48, "white", 0.2, seed=4)
    report = blocks.find_image_blocks(image)
    verdict = diagnose_output(report, 0, [])
    assert verdict is not None and "colour blocks over" in verdict and "tile 48 px" in verdict
    clean = blocks.find_image_blocks(load_photo("astronaut"))
    assert diagnose_output(clean, 0, []) is None
    tiny = blocks.BlockReport("image", 1024, 1024, ((0, 0, 8, 8),), 64, 8)
    assert not tiny.found  # below min_fraction


# ---- the numpy labelling against scipy.ndimage (which harness no longer imports) ----------

def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    masks = [rng.random((40, 57)) < p for p in (0.3, 0.5, 0.6, 0.75)]
    spiral = np.zeros((31, 31), dtype=bool)  # one region whose runs join late (a long chain)
    for i in range(0, 16, 2):
        spiral[i, i:31 - i] = spiral[30 - i, i:31 - i] = True
        spiral[i:31 - i, i] = spiral[i:31 - i, 30 - i] = True
    comb = np.zeros((20, 30), dtype=bool)  # teeth joined only at the bottom row
    comb[:, ::2] = True
    comb[-1] = True
    return [*masks, spiral, comb, np.zeros((5, 5), bool), np.ones((6, 4), bool),
            np.eye(9, dtype=bool)]


@pytest.mark.parametrize("index", range(9))
def test_label_regions_matches_scipy(index: int) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    mask = _masks()[index]
    want, want_count = ndimage.label(mask)
    got, count, boxes = blocks.label_regions(mask)
    assert count == want_count
    assert np.array_equal(got, want)  # same numbers, same (raster) order
    assert boxes == ndimage.find_objects(want)
    assert np.array_equal(blocks.dilate(mask), ndimage.binary_dilation(mask))
    rows = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    runs, _ = ndimage.label(mask, structure=rows)
    assert sorted(blocks.run_lengths(mask).tolist()) == sorted(
        np.bincount(runs.ravel())[1:].tolist())
