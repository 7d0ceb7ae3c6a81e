"""Builds of the simulated binaries: what a binary is made of, and how to make another one.

A real binary's speed and numerics come from its build (compiler flags, kernel tuning, a bug
in buffer reuse). A simulated binary is a small wrapper script (:mod:`harness.sim.assets`)
whose text carries its build as a literal, ``BUILD = {"speed": ..., "tnn_reuse": ...,
"label": ...}``, handed to :func:`harness.sim.pipeline.main`. So a different build is a
different file: pushing a "slower build" changes that asset set's digest, and a run's
recorded provenance names it, exactly as a new build of a real binary does.

- ``speed``: a time multiplier on every phase of the binary (1.05: 5 % slower);
- ``tnn_reuse``: the build reuses TNN (tensor) buffers even when ``CLML_NO_REUSE_TNN=1``
  asks it not to: stale values leak into some tiles of the output as small numeric drift
  (:func:`numeric_drift`), not (yet) as the flat colour blocks of full reuse; the image
  looks right at a glance and PSNR/SSIM against the reference catch it;
- ``label``: free text (a build number); alone it changes the digest and nothing else.

:func:`write_build` writes a build of the binaries into an asset root laid out like the
demo tree (``harness sim build`` is its command); point an asset set at it in
``$HARNESS_HOME/config.yaml`` (``assets: {sd15-binary: {root: DIR}}``) to "ship" it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.sim import assets

F32 = npt.NDArray[np.float32]

# Numeric drift of partial TNN reuse: this share of the tiles gets stale values added whose
# spread is AMOUNT x the tensor's own spread (chosen: visible to PSNR/SSIM, not to the eye
# or the colour-block detector, which looks for flat tiles).
DRIFT_FRACTION = 0.25
DRIFT_LATENT_AMOUNT = 0.05
DRIFT_IMAGE_AMOUNT = 0.12
DRIFT_TILE = {"latent": 4, "image": 16}  # pixels per tile side


class BuildError(ValueError):
    """A build description that cannot be: the message says why."""


@dataclass(frozen=True)
class Build:
    """One build of the simulated binaries (see the module docstring)."""

    speed: float = 1.0
    tnn_reuse: bool = False
    label: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise BuildError(f"build speed must be a positive number, got {self.speed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Build:
        if not data:
            return cls()
        try:
            return cls(speed=float(data.get("speed", 1.0)),
                       tnn_reuse=bool(data.get("tnn_reuse", False)),
                       label=str(data.get("label", "")))
        except (TypeError, ValueError) as exc:
            raise BuildError(f"bad build {dict(data)!r}: {exc}") from None


DEFAULT = Build()


def write_build(root: Path, build: Build,
                binaries: Sequence[str] = assets.BINARIES) -> list[Path]:
    """Write ``binaries`` of ``build`` into ``root`` (created; files replaced); return them."""
    unknown = sorted(set(binaries) - set(assets.BINARIES))
    if unknown:
        raise BuildError(f"unknown binary {', '.join(unknown)} (known: "
                         f"{', '.join(assets.BINARIES)})")
    written = []
    for name in binaries:
        path = root / name
        assets.put_file(path, assets.wrapper_script(name, build.to_dict()), 0o755)
        written.append(path)
    return written


def _tiles(shape: tuple[int, int], tile: int, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    rows, cols = -(-shape[0] // tile), -(-shape[1] // tile)
    chosen = rng.random((rows, cols)) < DRIFT_FRACTION
    mask = np.repeat(np.repeat(chosen, tile, axis=0), tile, axis=1)
    return np.asarray(mask[:shape[0], :shape[1]])


def numeric_drift(x: F32, rng: np.random.Generator, kind: str) -> F32:
    """``x`` (``(1, C, H, W)``) with stale values added in some tiles: noise of
    ``DRIFT_*_AMOUNT`` x the tensor's spread in ``DRIFT_FRACTION`` of the tiles."""
    amount = DRIFT_LATENT_AMOUNT if kind == "latent" else DRIFT_IMAGE_AMOUNT
    spread = float(np.nanstd(x)) or 1.0
    mask = _tiles((x.shape[-2], x.shape[-1]), DRIFT_TILE[kind], rng)
    noise = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(amount * spread)
    out = np.where(mask, x + noise, x).astype(np.float32)
    return np.clip(out, -1.0, 1.0).astype(np.float32) if kind == "image" else out
