"""Colour-block detector: confusion table, false positives on photographs, time per image.

Material we did not make: the natural photographs shipped in the scikit-image wheel. For
every tile size (8-64 px) and colour class, flat tiles are painted over every background
photo at several areas (2-40 %), on a random grid offset: positives. Negatives of the same
cell: the same tiles with a photograph's sensor noise (std 3/255) on them, i.e. flat-looking
squares that a decoder did not collapse (counted FP when the detector flags them; "cut" when
it flags only the photo's own flat areas that the squares cut into straight pieces). Then the
clean photographs (uint8 and float) and the virtual phone's clean outputs (images and
latents, many prompts and seeds).

Time: the detector on a 1024x1024 float image (clean, and 20 % corrupted) against a plain
numpy ``std`` pass over the same image, same run, median of ``--repeat``.

    python benchmarks/detector.py [--repeat 5] [--seeds 6]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.blockcases

from harness.run import blocks
from harness.sim import assets, imagegen
from tests.blockcases import (
    AREAS,
    BACKGROUNDS,
    PHOTOS,
    TILES,
    corrupt,
    load_photo,
    to_chw,
)

NOISE = 3 / 127.5  # 3/255 in [0, 1] units, as [-1, 1] floats
PROMPTS = ("a red fox", "a lighthouse on a cliff at sunset, oil painting",
           "portrait of an old man, studio lighting, plain grey background",
           "a clear blue sky", "black cat in the dark", "snowy field", "night city, neon",
           "a bowl of fruit on a table", "minimalist poster, flat colours", "foggy forest")


def confusion(photos: dict[str, np.ndarray]) -> None:
    print("confusion table: painted tiles (positives) vs the same tiles with 3/255 noise "
          f"(negatives), on {len(photos)} photographs x {len(AREAS)} areas")
    print(f"{'tile':>5} {'colour':<13} {'TP':>4} {'FN':>4} {'FP':>4} {'TN':>4} "
          f"{'recall px':>9} {'tile ok':>7} {'cut':>4}")
    totals = np.zeros(4, dtype=int)
    seed = cuts = 0
    for tile, kind in itertools.product(TILES, imagegen.COLOUR_CLASSES):
        cell = np.zeros(4, dtype=int)
        recall: list[float] = []
        tile_ok = cut = 0
        for name, area in itertools.product(photos, AREAS):
            seed += 1
            image, truth = corrupt(photos[name], tile, kind, area, seed)
            report = blocks.find_image_blocks(image)
            cell[0 if report.found else 1] += 1
            if report.mask is not None:
                recall.append(float((report.mask & truth).sum() / truth.sum()))
            tile_ok += report.tile_px == tile
            noise = np.random.default_rng(seed).normal(0, NOISE, image.shape)
            noisy = np.where(truth[None], image + noise, image).astype(np.float32)
            negative = blocks.find_image_blocks(noisy)
            hit = negative.mask is not None and bool((negative.mask & truth).any())
            cell[2 if hit else 3] += 1
            cut += negative.found and not hit
        totals += cell
        mean_recall = statistics.mean(recall) if recall else 0.0
        print(f"{tile:>5} {kind:<13} {cell[0]:>4} {cell[1]:>4} {cell[2]:>4} {cell[3]:>4} "
              f"{mean_recall:>9.3f} {tile_ok:>7} {cut:>4}")
        cuts += cut
    print(f"{'all':>5} {'':<13} {totals[0]:>4} {totals[1]:>4} {totals[2]:>4} {totals[3]:>4} "
          f"{'':>9} {'':>7} {cuts:>4}")
    print("FP: a noisy square flagged. cut: a negative flagged only outside the squares, i.e. "
          "the photo's own clipped flat area (white paper, black sky) cut by the painted "
          "squares into straight-edged pieces.")


def clean_photographs() -> None:
    fps = []
    for name in PHOTOS:
        photo = load_photo(name)
        for form, image in (("uint8", photo), ("float", to_chw(photo))):
            if blocks.find_image_blocks(image).boxes:
                fps.append(f"{name} ({form})")
    print(f"false positives on clean photographs: {len(fps)} of {2 * len(PHOTOS)} "
          f"({len(PHOTOS)} photographs, uint8 and float){': ' + ', '.join(fps) if fps else ''}")


def clean_virtual_phone(seeds: int) -> None:
    fp_image = fp_latent = n = 0
    for prompt, seed in itertools.product(PROMPTS, range(seeds)):
        ids = np.concatenate([assets.demo_token_ids(prompt).ravel(),
                              assets.demo_token_ids(prompt, 0).ravel()])
        latent = imagegen.synth_latent(ids, seed, 20, 7.5, 512, 512)
        image = imagegen.decode(latent)
        n += 1
        fp_image += bool(blocks.find_image_blocks(image).boxes
                         or blocks.find_image_blocks(imagegen.to_rgb8(image)).boxes)
        fp_latent += bool(blocks.find_latent_blocks(latent).boxes)
    print(f"false positives on clean virtual-phone outputs: images {fp_image} of {n}, "
          f"latents {fp_latent} of {n} ({len(PROMPTS)} prompts x {seeds} seeds)")


def median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timing(repeat: int) -> None:
    ids = np.concatenate([assets.demo_token_ids(PROMPTS[0]).ravel(),
                          assets.demo_token_ids(PROMPTS[0], 0).ravel()])
    latent = imagegen.synth_latent(ids, 0, 20, 7.5, 1024, 1024)
    clean = imagegen.decode(latent)
    bad = imagegen.image_blocks(clean, imagegen.rng_for("bench"), (0.2, 0.2))
    base = median_s(lambda: clean.std(axis=(2, 3)), repeat)
    print(f"time per 1024x1024 image (median of {repeat}); baseline numpy std pass "
          f"{base * 1000:.1f} ms")
    for label, fn in (("clean float image", lambda: blocks.find_image_blocks(clean)),
                      ("clean uint8 image", lambda: blocks.find_image_blocks(
                          imagegen.to_rgb8(clean))),
                      ("20 % corrupted image", lambda: blocks.find_image_blocks(bad)),
                      ("its 128x128 latent", lambda: blocks.find_latent_blocks(latent))):
        took = median_s(fn, repeat)
        print(f"  {label:<22} {took * 1000:7.1f} ms  ({took / base:5.1f}x the std pass)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    photos = {name: load_photo(name) for name in BACKGROUNDS}
    confusion(photos)
    clean_photographs()
    clean_virtual_phone(args.seeds)
    timing(args.repeat)


if __name__ == "__main__":
    main()
