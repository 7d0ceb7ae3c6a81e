"""Sync planning and its finishing script on their own, and Syncer against the in-memory
phone of tests/fakes.py (which speaks the sync protocol over a socketpair)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.assets import sync
from harness.assets.errors import InsufficientSpace, SyncError
from harness.assets.hashcache import HashCache
from harness.assets.sets import AssetEntry, AssetSet
from harness.assets.state import _parse_manifest
from harness.assets.sync import (
    MANIFEST_VERSION,
    TMP_MARK,
    LocalFile,
    RemoteFile,
    RemoteState,
    SetPlan,
    Syncer,
    _finish_script,
    plan_set,
    scan_set,
    set_status,
)
from harness.errors import UsageError
from tests.fakes import FakeDevice

DEST = "/data/local/tmp/sdxl_clml"
SHA_A, SHA_B = "a" * 64, "b" * 64


def local(rel: str, size: int = 10, mtime: int = 100, mode: int = 0o644, sha: str = SHA_A,
          dest: str = DEST) -> LocalFile:
    return LocalFile(dest, rel, f"/src/{rel}", size, mtime, mode, sha)


def remote(files: dict[str, RemoteFile], manifest: dict[str, list[object]] | None = None,
           stale: list[str] | None = None, name: str = "w") -> RemoteState:
    manifests = {name: {DEST: manifest}} if manifest is not None else {}
    return RemoteState(manifests, {DEST: {f"{DEST}/{k}": v for k, v in files.items()}},
                       stale or [])


ASET = AssetSet("w", [AssetEntry(Path("/src"), DEST, None)])


# ---- scan_set --------------------------------------------------------------------------------

def test_scan_set_hashes_files_and_takes_modes(tmp_path: Path) -> None:
    src = tmp_path / "w"
    (src / "sub").mkdir(parents=True)
    (src / "b.bin").write_bytes(b"bb")
    (src / "sub" / "a.bin").write_bytes(b"a")
    os.chmod(src / "b.bin", 0o600)
    single = tmp_path / "tool"
    single.write_bytes(b"#!/bin/sh\n")
    aset = AssetSet("w", [AssetEntry(src, DEST, None),
                          AssetEntry(single, "/data/local/tmp/tool", 0o755)])
    files = scan_set(aset, HashCache(tmp_path / "h.sqlite"))
    assert [(f.remote, f.size, f.mode) for f in files] == [
        (f"{DEST}/b.bin", 2, 0o600), (f"{DEST}/sub/a.bin", 1, 0o644),
        ("/data/local/tmp/tool", 10, 0o755)]
    assert files[0].sha256 == hashlib.sha256(b"bb").hexdigest()
    assert files[0].mtime == int((src / "b.bin").stat().st_mtime)


@pytest.mark.parametrize("bad", ["missing", "escape", "tmpname"])
def test_scan_set_refuses(tmp_path: Path, bad: str) -> None:
    src = tmp_path / "w"
    src.mkdir()
    if bad == "missing":
        src = tmp_path / "absent"
    elif bad == "escape":
        (tmp_path / "outside").write_text("secret")
        (src / "link").symlink_to(tmp_path / "outside")
    else:
        (src / f"x{TMP_MARK}123").write_text("half")
    with pytest.raises(UsageError, match="does not exist|escaping|unsupported file name"):
        scan_set(AssetSet("w", [AssetEntry(src, DEST, None)]), HashCache(tmp_path / "h.db"))


# ---- the manifest ------------------------------------------------------------------------------

def test_parse_manifest() -> None:
    entries = {DEST: {"a.bin": [10, 100, 420, SHA_A]}}
    good = json.dumps({"version": MANIFEST_VERSION, "entries": entries}).encode()
    assert _parse_manifest(good) == entries
    for bad in (b"{not json", b"[1, 2]", json.dumps({"version": 99, "entries": entries}).encode(),
                json.dumps({"version": MANIFEST_VERSION, "entries": [1]}).encode(), b""):
        assert _parse_manifest(bad) == {}, bad


# ---- plan_set ----------------------------------------------------------------------------------

def test_nothing_on_the_phone_pushes_everything_staged() -> None:
    files = [local("a.bin"), local("sub/b.bin")]
    plan = plan_set(ASET, files, RemoteState({}, {DEST: {}}, []), delete=False)
    assert plan.push == files and plan.repaired == [] and plan.unchanged == 0
    assert plan.staged == {DEST} and not plan.manifest_current
    assert plan.tmp_name(files[1], "tok") == f"{DEST}{TMP_MARK}tok/sub/b.bin"


def test_unchanged_files_are_not_pushed() -> None:
    state = remote({"a.bin": RemoteFile(10, 100, 0o644)}, {"a.bin": [10, 100, 0o644, SHA_A]})
    plan = plan_set(ASET, [local("a.bin")], state, delete=True)
    assert (plan.push, plan.delete, plan.unchanged, plan.manifest_current) == ([], [], 1, True)
    assert plan.staged == set()  # the destination exists: files are renamed one by one


def test_a_file_changed_on_the_phone_is_repaired() -> None:
    state = remote({"a.bin": RemoteFile(9, 555, 0o644)}, {"a.bin": [10, 100, 0o644, SHA_A]})
    plan = plan_set(ASET, [local("a.bin")], state, delete=False)
    assert [f.rel for f in plan.push] == ["a.bin"]
    assert plan.repaired == [f"{DEST}/a.bin"]
    assert plan.tmp_name(plan.push[0], "tok") == f"{DEST}/a.bin{TMP_MARK}tok"


def test_a_file_deleted_on_the_phone_is_repaired() -> None:
    state = remote({"b.bin": RemoteFile(10, 100, 0o644)},
                   {"a.bin": [10, 100, 0o644, SHA_A], "b.bin": [10, 100, 0o644, SHA_A]})
    plan = plan_set(ASET, [local("a.bin"), local("b.bin")], state, delete=False)
    assert [f.rel for f in plan.push] == ["a.bin"] and plan.repaired == [f"{DEST}/a.bin"]


@pytest.mark.parametrize("changed", [local("a.bin", sha=SHA_B),
                                     local("a.bin", mtime=200), local("a.bin", size=11)])
def test_a_local_change_is_pushed_not_repaired(changed: LocalFile) -> None:
    state = remote({"a.bin": RemoteFile(10, 100, 0o644)}, {"a.bin": [10, 100, 0o644, SHA_A]})
    plan = plan_set(ASET, [changed], state, delete=False)
    assert [f.rel for f in plan.push] == ["a.bin"] and plan.repaired == []


def test_a_local_mode_change_is_a_chmod_not_a_push() -> None:
    # 0644 -> 0755 is 0666 -> 0777 on the phone (adbd's rule): same bytes, new mode
    state = remote({"a.bin": RemoteFile(10, 100, 0o666)}, {"a.bin": [10, 100, 0o644, SHA_A]})
    plan = plan_set(ASET, [local("a.bin", mode=0o755)], state, delete=False)
    assert plan.push == [] and [f.rel for f in plan.chmod] == ["a.bin"]


def test_without_a_manifest_a_matching_listing_is_trusted() -> None:
    state = remote({"a.bin": RemoteFile(10, 100, 0o644), "b.bin": RemoteFile(10, 99, 0o644)})
    plan = plan_set(ASET, [local("a.bin"), local("b.bin")], state, delete=False)
    assert plan.unchanged == 1 and [f.rel for f in plan.push] == ["b.bin"]
    assert plan.repaired == [] and not plan.manifest_current


def test_sizes_of_4_gib_and_more_compare_modulo_2_32() -> None:
    big = 5 * 2**30
    state = remote({"w.bin": RemoteFile(big & 0xFFFFFFFF, 100, 0o644)},
                   {"w.bin": [big, 100, 0o644, SHA_A]})
    plan = plan_set(ASET, [local("w.bin", size=big)], state, delete=False)
    assert plan.push == [] and plan.unchanged == 1


def test_delete_only_with_delete() -> None:
    state = remote({"a.bin": RemoteFile(10, 100, 0o644), "old.bin": RemoteFile(1, 1, 0o644)},
                   {"a.bin": [10, 100, 0o644, SHA_A]})
    assert plan_set(ASET, [local("a.bin")], state, delete=False).delete == []
    assert plan_set(ASET, [local("a.bin")], state, delete=True).delete == [f"{DEST}/old.bin"]


def test_stale_temporaries_of_this_set_only() -> None:
    mine = [f"{DEST}{TMP_MARK}dead1", f"{DEST}/a.bin{TMP_MARK}dead2"]
    theirs = [f"/data/local/tmp/sd15_clml{TMP_MARK}dead3"]
    plan = plan_set(ASET, [local("a.bin")], remote({}, None, mine + theirs), delete=False)
    assert plan.stale_tmp == mine


def test_set_status() -> None:
    files = [local("a.bin"), local("b.bin")]
    assert set_status(SetPlan("w", files, manifest_current=True)) == ("present", "2 file(s)")
    assert set_status(SetPlan("w", files, push=files)) == ("missing", "2 file(s) to push")
    stale = SetPlan("w", files, push=files[:1], repaired=[files[0].remote], unchanged=1)
    assert set_status(stale) == ("stale", "1 of 2 file(s) to push, 1 changed on the phone")


# ---- the finishing script, run by a real shell -------------------------------------------------

def test_finish_script_puts_files_in_place(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "MANIFEST_DIR", str(tmp_path / "manifests"))
    (tmp_path / "manifests").mkdir()
    fresh, kept = str(tmp_path / "fresh dir"), str(tmp_path / "kept")
    token = "tok123"
    staged = SetPlan("s1", [], staged={fresh})
    staged.push = [LocalFile(fresh, "x/1.bin", "", 1, 1, 0o644, SHA_A)]
    changed_file = LocalFile(kept, "2.bin", "", 1, 1, 0o644, SHA_A)
    other = SetPlan("s2", [], push=[changed_file], delete=[f"{kept}/gone.bin"],
                    stale_tmp=[f"{kept}{TMP_MARK}old", f"{kept}/3.bin{TMP_MARK}old"])
    # what the push left behind: temporaries next to their final names
    for path, text in [(f"{fresh}{TMP_MARK}{token}/x/1.bin", "new1"),
                       (f"{kept}/2.bin{TMP_MARK}{token}", "new2"), (f"{kept}/2.bin", "old2"),
                       (f"{kept}/gone.bin", "x"), (f"{kept}{TMP_MARK}old/y", "x"),
                       (f"{kept}/3.bin{TMP_MARK}old", "x"), (f"{fresh}/leftover", "x"),
                       (f"{tmp_path}/manifests/s1.json{TMP_MARK}{token}", "m1"),
                       (f"{tmp_path}/manifests/s2.json{TMP_MARK}{token}", "m2")]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    script = _finish_script([staged, other], token)
    assert script.startswith("#!/system/bin/sh\nrc=0\n") and script.endswith("exit $rc\n")
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    tree = {str(p.relative_to(tmp_path)): p.read_text()
            for p in tmp_path.rglob("*") if p.is_file()}
    assert tree == {"fresh dir/x/1.bin": "new1", "kept/2.bin": "new2",
                    "manifests/s1.json": "m1", "manifests/s2.json": "m2"}


def test_finish_script_reports_a_failed_rename(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "MANIFEST_DIR", str(tmp_path))
    plan = SetPlan("s", [], push=[LocalFile(str(tmp_path), "a", "", 1, 1, 0o644, SHA_A)])
    (tmp_path / f"s.json{TMP_MARK}t").write_text("m")
    done = subprocess.run(["sh", "-c", _finish_script([plan], "t")], capture_output=True,
                          check=False)  # a.<tmp> was never pushed: its mv fails
    assert done.returncode == 1
    assert (tmp_path / "s.json").read_text() == "m"  # the rest still ran


def test_finish_script_quotes_every_path() -> None:
    plan = SetPlan("s", [], delete=["/data/local/tmp/a b; touch x"])
    assert "rm -f '/data/local/tmp/a b; touch x' || rc=1" in _finish_script([plan], "t")


# ---- Syncer against the in-memory phone --------------------------------------------------------

@pytest.fixture
def weights(tmp_path: Path) -> AssetSet:
    src = tmp_path / "weights"
    (src / "unet").mkdir(parents=True)
    (src / "unet" / "w0.bin").write_bytes(b"\x01" * 70_000)  # more than one DATA chunk
    (src / "clip.bin").write_bytes(b"clip")
    return AssetSet("weights", [AssetEntry(src, DEST, None)])


def syncer(fake: FakeDevice, tmp_path: Path) -> Syncer:
    return Syncer(fake, HashCache(tmp_path / "hashes.sqlite"))


def test_a_lost_connection_goes_on_with_what_is_left(tmp_path: Path,
                                                    weights: AssetSet) -> None:
    fake = FakeDevice()
    fake.drop_sync_after = 1  # the cable comes out right after the first file's OKAY
    result = syncer(fake, tmp_path).sync([weights])
    assert fake.recoveries == 1
    assert sorted(result.pushed) == [f"{DEST}/clip.bin", f"{DEST}/unet/w0.bin"]
    assert fake.files[f"{DEST}/unet/w0.bin"] == b"\x01" * 70_000
    assert fake.files[f"{DEST}/clip.bin"] == b"clip"
    assert not any(TMP_MARK in p for p in fake.files), "temporaries must be renamed away"
    # 1 file before the drop; then only the other file, the manifest and the script:
    # the confirmed file was kept, not sent again (it would be 5 sends then)
    assert fake.sends == 4


def test_first_sync_pushes_then_nothing_to_do(tmp_path: Path, weights: AssetSet) -> None:
    fake = FakeDevice()
    first = syncer(fake, tmp_path).sync([weights])
    assert sorted(first.pushed) == [f"{DEST}/clip.bin", f"{DEST}/unet/w0.bin"]
    assert first.pushed_bytes == 70_004 and first.changed
    assert fake.files[f"{DEST}/unet/w0.bin"] == b"\x01" * 70_000
    src_mtime = int((tmp_path / "weights" / "clip.bin").stat().st_mtime)
    assert fake.mtimes[f"{DEST}/clip.bin"] == src_mtime
    assert not any(TMP_MARK in p for p in fake.files), "temporaries must be renamed away"
    manifest = json.loads(fake.files[f"{sync.MANIFEST_DIR}/weights.json"])
    assert set(manifest["entries"][DEST]) == {"clip.bin", "unet/w0.bin"}
    sessions, commands = fake.sync_sessions, len(fake.commands)
    again = syncer(fake, tmp_path).sync([weights])
    assert not again.changed and again.pushed == () and again.repaired == ()
    assert fake.sync_sessions == sessions + 1  # only the listing ...
    assert fake.commands[commands:] == []  # ... and no shell round trip at all


def test_progress_counts_the_files_only(tmp_path: Path, weights: AssetSet) -> None:
    seen: list[tuple[int, int, str]] = []
    syncer(FakeDevice(), tmp_path).sync([weights], progress=lambda *a: seen.append(a))
    assert all(TMP_MARK not in path for _, _, path in seen)
    assert max(done for done, _, _ in seen) == seen[-1][1] == 70_004


def test_a_file_changed_on_the_phone_is_pushed_again(tmp_path: Path,
                                                     weights: AssetSet) -> None:
    fake = FakeDevice()
    syncer(fake, tmp_path).sync([weights])
    fake.put(f"{DEST}/clip.bin", b"clop!", mtime=12345)
    fake.put(f"{DEST}/extra.bin", b"x")
    result = syncer(fake, tmp_path).sync([weights], delete=True)
    assert result.repaired == (f"{DEST}/clip.bin",) and result.deleted == (f"{DEST}/extra.bin",)
    assert fake.files[f"{DEST}/clip.bin"] == b"clip" and f"{DEST}/extra.bin" not in fake.files


def test_verify_finds_and_repairs_what_the_listing_cannot_see(tmp_path: Path,
                                                              weights: AssetSet) -> None:
    fake = FakeDevice()
    syncer(fake, tmp_path).sync([weights])
    path = f"{DEST}/clip.bin"
    fake.files[path] = b"CLIP"  # same size, same mtime: only a hash tells
    assert syncer(fake, tmp_path).sync([weights]).pushed == ()
    result = syncer(fake, tmp_path).sync([weights], verify=True)
    assert result.verified == 2 and result.mismatched == (path,)
    assert path in result.pushed
    assert fake.files[path] == b"clip", "a mismatch found by --verify must be pushed again"
    clean = syncer(fake, tmp_path).sync([weights], verify=True)
    assert clean.mismatched == () and clean.pushed == () and clean.verified == 2


def test_verify_repairs_a_file_missing_on_the_phone(tmp_path: Path, weights: AssetSet) -> None:
    fake = FakeDevice()
    s = syncer(fake, tmp_path)
    plans = s.plan([weights])
    result = s.sync([weights])
    del fake.files[f"{DEST}/unet/w0.bin"]
    checked = s.verify(plans, result)
    assert checked.mismatched == (f"{DEST}/unet/w0.bin",)
    assert fake.files[f"{DEST}/unet/w0.bin"] == b"\x01" * 70_000


def test_stale_temporaries_are_removed(tmp_path: Path, weights: AssetSet) -> None:
    fake = FakeDevice()
    syncer(fake, tmp_path).sync([weights])
    fake.put(f"{DEST}/clip.bin{TMP_MARK}dead", b"half")
    fake.put(f"{DEST}{TMP_MARK}dead/unet/w0.bin", b"half")
    syncer(fake, tmp_path).sync([weights])
    assert not any(TMP_MARK in p for p in fake.files)


def test_not_enough_space_pushes_nothing(tmp_path: Path, weights: AssetSet) -> None:
    fake = FakeDevice()
    fake.free_kb = 1024
    with pytest.raises(InsufficientSpace, match="nothing was pushed"):
        syncer(fake, tmp_path).sync([weights])
    assert fake.files == {} and fake.sync_sessions == 1


def test_a_refused_push_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "lib.so"
    src.write_bytes(b"elf")
    fake = FakeDevice()
    with pytest.raises(SyncError, match="Read-only file system"):
        syncer(fake, tmp_path).sync([AssetSet("sys", [AssetEntry(src, "/system/lib64/x.so",
                                                                 None)])])
