"""Synthetic latents and the stand-in VAE: deterministic, prompt- and seed-dependent, fast."""

from __future__ import annotations

import numpy as np

from harness.run.blocks import find_image_blocks, find_latent_blocks
from harness.sim import assets, imagegen


def ids(prompt: str) -> np.ndarray:
    return np.concatenate([assets.demo_token_ids(prompt).ravel(),
                           assets.demo_token_ids(prompt, 0).ravel()])


def test_shapes_range_and_determinism() -> None:
    lat = imagegen.synth_latent(ids("a red fox"), 3, 20, 7.5, 512, 512)
    assert lat.shape == (1, 4, 64, 64) and lat.dtype == np.float32
    img = imagegen.decode(lat)
    assert img.shape == (1, 3, 512, 512) and img.dtype == np.float32
    assert img.min() >= -1.0 and img.max() <= 1.0
    again = imagegen.decode(imagegen.synth_latent(ids("a red fox"), 3, 20, 7.5, 512, 512))
    assert img.tobytes() == again.tobytes()
    assert not find_image_blocks(img).boxes and not find_latent_blocks(lat).boxes


def test_prompt_and_seed_change_the_image() -> None:
    base = imagegen.decode(imagegen.synth_latent(ids("a red fox"), 3, 20, 7.5, 512, 512))
    for other in (imagegen.synth_latent(ids("a blue whale"), 3, 20, 7.5, 512, 512),
                  imagegen.synth_latent(ids("a red fox"), 4, 20, 7.5, 512, 512)):
        assert float(np.abs(imagegen.decode(other) - base).mean()) > 0.1


def test_colour_blocks_and_nan() -> None:
    lat = imagegen.synth_latent(ids("a red fox"), 3, 20, 7.5, 512, 512)
    rng = imagegen.rng_for("test")
    blocked = imagegen.colour_blocks(lat, rng)
    assert find_latent_blocks(blocked).found
    assert find_image_blocks(imagegen.decode(blocked)).found
    nan = imagegen.decode(imagegen.inject_nan(lat, rng, 2))
    bad = int(np.isnan(nan[0]).any(axis=0).sum())
    assert bad in (64, 128)  # each NaN latent pixel spoils one 8x8 patch, nothing more
    assert np.isfinite(imagegen.to_rgb8(nan)).all()


def test_corruption_varies_with_the_seed_but_is_deterministic() -> None:
    lat = imagegen.synth_latent(ids("a red fox"), 3, 20, 7.5, 512, 512)
    img = imagegen.decode(lat)
    latent_tiles, image_tiles = set(), set()
    for seed in range(24):
        blocked = imagegen.colour_blocks(lat, imagegen.rng_for("vary", seed))
        again = imagegen.colour_blocks(lat, imagegen.rng_for("vary", seed))
        assert blocked.tobytes() == again.tobytes()
        report = find_latent_blocks(blocked)
        assert report.found
        latent_tiles.add(report.tile_px)
        painted = imagegen.image_blocks(img, imagegen.rng_for("vary", seed))
        found = find_image_blocks(painted)
        assert found.found and np.isfinite(painted).all()
        image_tiles.add(found.tile_px)
    assert len(latent_tiles) >= 4 and len(image_tiles) >= 8
    assert min(t for t in image_tiles if t is not None) < 16


def test_block_colours_cover_greys_black_white_and_out_of_range() -> None:
    rng = np.random.default_rng(0)
    grey = imagegen.block_colour(rng, "grey")
    assert grey[0] == grey[1] == grey[2] and -1 < grey[0] < 1
    assert (imagegen.block_colour(rng, "black") == -1).all()
    assert (imagegen.block_colour(rng, "white") == 1).all()
    assert (np.abs(imagegen.block_colour(rng, "out-of-range")) > 1).all()
    assert (np.abs(imagegen.block_colour(rng, "in-range")) < 1).all()


def test_a_flat_latent_region_decodes_to_a_flat_tile() -> None:
    lat = imagegen.synth_latent(ids("a red fox"), 0, 20, 7.5, 256, 256)
    grey = imagegen.latent_of_colour(np.array([0.2, 0.2, 0.2], np.float32))
    lat[0, :, 8:12, 16:20] = grey[:, None, None]
    img = imagegen.decode(lat)
    tile = img[0, :, 64:96, 128:160]
    assert float(np.ptp(tile, axis=(1, 2)).max()) == 0.0
    assert np.allclose(tile[:, 0, 0], 0.2, atol=1e-3)


def test_sdxl_decode_shapes() -> None:
    # How fast this is belongs in benchmarks/, not in a test on a shared CI machine.
    lat = imagegen.synth_latent(ids("a red fox"), 0, 20, 7.5, 1024, 1024)
    img = imagegen.decode(lat)
    assert img.shape == (1, 3, 1024, 1024) and img.dtype == np.float32
    rgb = imagegen.to_rgb8(img)
    assert rgb.shape == (1024, 1024, 3) and rgb.dtype == np.uint8
