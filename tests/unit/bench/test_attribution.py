"""Naming what changed between the last good and the first bad run."""

from __future__ import annotations

import pytest

from harness.bench.attribution import Provenance, attribute, describe, diff

A, B, C, D = "a1b2c3d4" + "0" * 56, "c3d4e5f6" + "1" * 56, "9f8e7d6c" + "2" * 56, "e" * 64
GOOD = Provenance(
    assets={"sdxl-binaries": {"sdxl_pipeline_run": A, "libQnnHtp.so": C},
            "sdxl-weights": {"unet.bin": D}},
    harness_version="0.1.0", build_fingerprint="google/oriole/oriole:13/TQ3A/1:user/rel")


def _with(**kw: object) -> Provenance:
    fields = {"assets": GOOD.assets, "harness_version": GOOD.harness_version,
              "build_fingerprint": GOOD.build_fingerprint, **kw}
    return Provenance(**fields)  # type: ignore[arg-type]


def test_a_new_binary_build_is_named() -> None:
    bad = _with(assets={**GOOD.assets,
                        "sdxl-binaries": {"sdxl_pipeline_run": B, "libQnnHtp.so": C}})
    assert describe(diff(GOOD, bad)) == [
        "sdxl-binaries changed: sdxl_pipeline_run a1b2c3d4 -> c3d4e5f6"]


def test_phone_os_update_and_harness_version() -> None:
    bad = _with(build_fingerprint="google/oriole/oriole:14/UP1A/2:user/rel",
                harness_version="0.2.0")
    assert describe(diff(GOOD, bad)) == [
        "phone OS update: google/oriole/oriole:13/TQ3A/1:user/rel -> "
        "google/oriole/oriole:14/UP1A/2:user/rel",
        "harness 0.1.0 -> 0.2.0"]


def test_files_added_removed_and_sets_added_removed() -> None:
    bad = _with(assets={"sdxl-binaries": {"sdxl_pipeline_run": A, "libQnnHtp.so": C,
                                          "libnew.so": B},
                        "qnn-libs": {"x": A}})
    lines = describe(diff(GOOD, bad))
    assert lines == ["asset set qnn-libs added",
                     "sdxl-binaries changed: libnew.so (new) -> c3d4e5f6",
                     "asset set sdxl-weights removed"]
    gone = _with(assets={**GOOD.assets, "sdxl-weights": {}})
    assert describe(diff(GOOD, gone)) == ["sdxl-weights changed: unet.bin eeeeeeee -> (removed)"]


def test_many_files_are_counted() -> None:
    good = Provenance(assets={"w": {f"f{i}": A for i in range(6)}})
    bad = Provenance(assets={"w": {f"f{i}": B for i in range(6)}})
    assert describe(diff(good, bad)) == [
        "w changed: f0 a1b2c3d4 -> c3d4e5f6, f1 a1b2c3d4 -> c3d4e5f6, "
        "f2 a1b2c3d4 -> c3d4e5f6 and 3 more files"]


def test_nothing_changed_says_so() -> None:
    assert diff(GOOD, _with()) == []
    assert "nothing recorded changed" in describe([])[0]


def test_attribute_skips_nights_without_a_record() -> None:
    bad = _with(harness_version="0.2.0")
    history = [GOOD, GOOD, None, bad, None, bad]
    assert describe(attribute(history, 3)) == ["harness 0.1.0 -> 0.2.0"]
    assert describe(attribute(history, 2)) == ["harness 0.1.0 -> 0.2.0"]
    assert attribute(history, 4) == []
    with pytest.raises(ValueError, match="before"):
        attribute([None, bad], 1)
