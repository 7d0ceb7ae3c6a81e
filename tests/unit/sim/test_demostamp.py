"""The demo tree's stamp: it vouches for the tree only while every file is as written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.sim import assets, demostamp
from harness.statkey import RACY_NS


def _age_stamp(dest: Path, seconds: float) -> None:
    """As if the stamp had been written ``seconds`` after the files (no sleeping in tests)."""
    path = demostamp.stamp_path(dest)
    stamp = json.loads(path.read_text())
    stamp["written_ns"] += int(seconds * 1e9)
    path.write_text(json.dumps(stamp))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dest = tmp_path / "demo_assets"
    assets.build_demo_assets(dest)
    return dest


def test_a_fresh_stamp_is_racy_and_an_older_one_vouches(tree: Path) -> None:
    assert demostamp.stamp_path(tree).is_file()
    assert not list(tree.rglob("*.json"))  # beside the tree, never in it
    assert not demostamp.is_current(tree)  # written in the same tick as the files
    _age_stamp(tree, RACY_NS / 1e9 + 1)
    assert demostamp.is_current(tree)


def test_an_edit_that_keeps_size_and_mtime_is_seen(tree: Path) -> None:
    _age_stamp(tree, RACY_NS / 1e9 + 1)
    victim = tree / assets.SD15_WEIGHTS / "unet.bin"
    before = victim.stat()
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r
    assert victim.stat().st_size == before.st_size
    assert not demostamp.is_current(tree)  # ctime moved


@pytest.mark.parametrize("change", ["delete", "chmod", "stamp", "key"])
def test_what_else_voids_the_stamp(tree: Path, change: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _age_stamp(tree, RACY_NS / 1e9 + 1)
    if change == "delete":
        (tree / assets.MNN_FUSE / "libMNN.so").unlink()
    elif change == "chmod":
        (tree / "sd15_pipeline_run").chmod(0o644)
    elif change == "stamp":
        demostamp.stamp_path(tree).write_text("{not json")
    else:  # harness.sim.assets changed: what it writes may differ
        monkeypatch.setattr(demostamp, "generator_key", lambda: "another")
    assert not demostamp.is_current(tree)


def test_building_again_repairs_and_leaves_a_tree_the_stamp_vouches_for(tree: Path) -> None:
    (tree / assets.SD15_WEIGHTS / "unet.bin").write_bytes(b"broken")
    assets.build_demo_assets(tree)
    assert (tree / assets.SD15_WEIGHTS / "unet.bin").stat().st_size == \
        assets.SD15_FILES["unet.bin"]
    _age_stamp(tree, RACY_NS / 1e9 + 1)
    assert demostamp.is_current(tree)
