"""Device paths on the host: namespace mode (identity) and rewrite mode (under the root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.sim import paths


def test_namespace_mode_is_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.SIM_ROOT_ENV, raising=False)
    monkeypatch.delenv(paths.SIM_DIR_ENV, raising=False)
    assert paths.device_path("/data/local/tmp") == Path("/data/local/tmp")
    assert paths.to_device(Path("/data/local/tmp")) == "/data/local/tmp"
    assert paths.strip_root("/data/local/tmp") == "/data/local/tmp"
    assert paths.ctl_dir() == Path("/.sim")


def test_rewrite_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv(paths.SIM_ROOT_ENV, str(root))
    monkeypatch.setenv(paths.SIM_DIR_ENV, str(tmp_path / "ctl"))
    host = paths.device_path("/data/local/tmp/x")
    assert host == root / "data/local/tmp/x"
    assert paths.device_path(str(host)) == host  # already translated by the adbd: unchanged
    assert paths.device_path("output/x") == Path("output/x")  # relative: left alone
    assert paths.to_device(host) == "/data/local/tmp/x"
    assert paths.to_device(root) == "/"
    assert paths.strip_root(f"{root}/data/local/tmp/MNN_fuse:{root}/system/lib64") == \
        "/data/local/tmp/MNN_fuse:/system/lib64"
    assert paths.ctl_dir() == tmp_path / "ctl"


@pytest.mark.parametrize(("directory", "denial"), [
    ("/data/local/tmp", None), ("/data/local/tmp/sub", None), ("/sdcard", None),
    ("/", "Read-only file system"), ("/system/bin", "Read-only file system"),
    ("/data", "Permission denied"), ("/data/local/tmpfoo", "Permission denied"),
])
def test_shell_write_denial(directory: str, denial: str | None) -> None:
    assert paths.shell_write_denial(directory) == denial
