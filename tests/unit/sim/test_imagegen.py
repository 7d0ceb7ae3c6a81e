"""Synthetic latents and the stand-in VAE: deterministic, prompt- and seed-dependent, fast."""

from __future__ import annotations

import numpy as np

from harness.sim import assets, imagegen
from tests.simphone import blocky_tiles, constant_latent_tiles


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
    assert blocky_tiles(img) == 0 and constant_latent_tiles(lat) == 0


def test_prompt_and_seed_change_the_image() -> None:
    base = imagegen.decode(imagegen.synth_latent(ids("a red fox"), 3, 20, 7.5, 512, 512))
    for other in (imagegen.synth_latent(ids("a blue whale"), 3, 20, 7.5, 512, 512),
                  imagegen.synth_latent(ids("a red fox"), 4, 20, 7.5, 512, 512)):
        assert float(np.abs(imagegen.decode(other) - base).mean()) > 0.1


def test_colour_blocks_and_nan() -> None:
    lat = imagegen.synth_latent(ids("a red fox"), 3, 20, 7.5, 512, 512)
    rng = imagegen.rng_for("test")
    blocked = imagegen.colour_blocks(lat, rng, 3)
    assert constant_latent_tiles(blocked) >= 1
    assert blocky_tiles(imagegen.decode(blocked)) >= 1
    nan = imagegen.decode(imagegen.inject_nan(lat, rng, 2))
    bad = int(np.isnan(nan[0]).any(axis=0).sum())
    assert bad in (64, 128)  # each NaN latent pixel spoils one 8x8 patch, nothing more
    assert np.isfinite(imagegen.to_rgb8(nan)).all()


def test_sdxl_decode_shapes() -> None:
    # How fast this is belongs in benchmarks/, not in a test on a shared CI machine.
    lat = imagegen.synth_latent(ids("a red fox"), 0, 20, 7.5, 1024, 1024)
    img = imagegen.decode(lat)
    assert img.shape == (1, 3, 1024, 1024) and img.dtype == np.float32
    rgb = imagegen.to_rgb8(img)
    assert rgb.shape == (1024, 1024, 3) and rgb.dtype == np.uint8
