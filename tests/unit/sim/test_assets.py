"""The demo asset tree and the checks the simulated binaries run on it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.sim import assets


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assets.build_demo_assets(tmp_path_factory.mktemp("demo"))


def test_layout_size_and_idempotence(tree: Path) -> None:
    for rel in ("sd15_pipeline_run", "sdxl_pipeline_run", "sdxl_vae_decoder_run",
                "sd15_clml/sd15_clml_weights/clip_ids.i32", "sdxl_clml/sdxl_clml_weights/unet.bin",
                "MNN_clip/clip_int8.mnn", "MNN_clip/clip_2_int8.mnn",
                "MNN_clip/clip_2_int8.mnn.weight", "MNN_fuse/libMNN.so",
                "MNN_fuse/libMNN_Express.so", "MNN_fuse/libMNN_CL.so", "libMNN.so",
                "sdxl_embeds/sdxl_text_embeds.f32", "sdxl_embeds/sdxl_pooled_embeds.f32"):
        assert (tree / rel).is_file(), rel
    for binary in assets.BINARIES:
        assert os.access(tree / binary, os.X_OK)
        assert (tree / binary).read_text().startswith("#!/")
    files = [p for p in tree.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2 * 1024 * 1024
    before = {p: p.stat().st_mtime_ns for p in files}
    assets.build_demo_assets(tree)
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_old_mnn_lacks_attention(tree: Path) -> None:
    assert "Attention" in assets.library_ops((tree / "MNN_fuse/libMNN.so").read_bytes())
    assert "Attention" in assets.library_ops((tree / "MNN_fuse/libMNN_CL.so").read_bytes())
    assert "Attention" not in assets.library_ops((tree / "libMNN.so").read_bytes())


def test_weight_checks(tmp_path: Path) -> None:
    tree = assets.build_demo_assets(tmp_path)
    weights = tree / assets.SDXL_WEIGHTS
    index = assets.verify_weights(weights, "W", "sdxl", ["unet.bin", "vae_decoder.bin"])
    assert (index.height, index.width) == (1024, 1024)
    with pytest.raises(assets.AssetError, match="these are sdxl weights, not sd15"):
        assets.verify_weights(weights, "W", "sd15", ["unet.bin"])
    unet = weights / "unet.bin"
    unet.write_bytes(b"JUNKJUNK" + unet.read_bytes()[8:])
    with pytest.raises(assets.AssetError, match="W/unet.bin: bad magic"):
        assets.verify_weights(weights, "W", "sdxl", ["unet.bin"])
    clip = tree / assets.MNN_CLIP
    assets.verify_clip(clip, "C")
    weight = clip / assets.CLIP2_WEIGHT
    weight.write_bytes(weight.read_bytes()[:-1])
    size = assets.CLIP_SIZES[assets.CLIP2_WEIGHT]
    with pytest.raises(assets.AssetError, match=rf"C/clip_2_int8.mnn.weight: expected {size} "
                                                rf"bytes, got {size - 1}"):
        assets.verify_clip(clip, "C")


def test_token_ids() -> None:
    ids = assets.demo_token_ids("a cat, sitting", pad_token=0)
    assert ids.shape == (2, 77) and ids.dtype == np.int32
    assert list(ids[0, :3]) == [49406, 49407, 0]
    assert ids[1, 0] == 49406 and 49407 in ids[1] and ids[1, -1] == 0
    assert assets.demo_token_ids("a cat")[1, -1] == 49407
    assert ids.tobytes() == assets.demo_token_ids("a cat, sitting", pad_token=0).tobytes()


def test_demo_assets_dir_under_harness_home(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    path = assets.demo_assets_dir()
    assert path == tmp_path.resolve() / "sim" / "demo_assets"
    assert (path / "sdxl_pipeline_run").is_file()
