"""Sync's plan: what is unchanged on a phone whose adbd rewrites modes (AOSP's rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.assets.sets import AssetEntry, AssetSet
from harness.assets.sync import (
    LocalFile,
    RemoteFile,
    RemoteState,
    _finish_script,
    phone_mode,
    plan_set,
    set_status,
)

DEST = "/data/local/tmp/w"


@pytest.mark.parametrize(("local", "phone"), [(0o644, 0o666), (0o755, 0o777), (0o600, 0o666),
                                             (0o640, 0o666), (0o700, 0o777), (0o070, 0o077),
                                             (0o4755, 0o777)])
def test_phone_mode_is_adbds_rule(local: int, phone: int) -> None:
    assert phone_mode(local) == phone
    assert phone_mode(phone) == phone


def plan(mode_local: int, mode_listed: int, mode_recorded: int) -> tuple[LocalFile, object]:
    f = LocalFile(DEST, "a.bin", "/x/a.bin", 10, 1000, mode_local, "aa")
    remote = RemoteState({"s": {DEST: {"a.bin": [10, 1000, mode_recorded, "aa"]}}},
                         {DEST: {f"{DEST}/a.bin": RemoteFile(10, 1000, mode_listed)}}, [])
    return f, plan_set(AssetSet("s", [AssetEntry(Path("/x"), DEST, None)]), [f], remote, False)


def test_a_file_adbd_rewrote_is_unchanged() -> None:
    _, p = plan(0o644, 0o666, 0o644)
    assert (p.push, p.chmod, p.unchanged) == ([], [], 1)  # type: ignore[attr-defined]
    assert set_status(p)[0] == "present"  # type: ignore[arg-type]


def test_a_file_made_executable_is_chmodded_not_pushed() -> None:
    f, p = plan(0o755, 0o666, 0o644)
    assert (p.push, p.chmod) == ([], [f])  # type: ignore[attr-defined]
    assert set_status(p)[0] == "stale"  # type: ignore[arg-type]
    script = _finish_script([p], "tok")  # type: ignore[list-item]
    assert f"chmod 777 {DEST}/a.bin || rc=1" in script


def test_content_change_still_pushes() -> None:
    f = LocalFile(DEST, "a.bin", "/x/a.bin", 10, 1000, 0o644, "bb")
    remote = RemoteState({"s": {DEST: {"a.bin": [10, 1000, 0o644, "aa"]}}},
                         {DEST: {f"{DEST}/a.bin": RemoteFile(10, 1000, 0o666)}}, [])
    p = plan_set(AssetSet("s", [AssetEntry(Path("/x"), DEST, None)]), [f], remote, False)
    assert p.push == [f]
