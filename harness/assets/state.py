"""What a sync compares: the local files of asset sets, the phone's state of them, and the
plan that follows (what to push, chmod, delete; see :mod:`harness.assets.sync`).

The local side is a scan hashed through the cache (:mod:`harness.assets.hashcache`); the
phone's side is read through one sync connection as pipelined STAT/LIST/RECV batches, one
batch per directory depth (:func:`read_remote_state`). Sync v1 carries 32-bit sizes: files
of 4 GiB or more compare modulo 2**32 in the listing (the sha256 still differs).
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.assets.adbsync import SyncClient
from harness.assets.hashcache import HashCache
from harness.assets.sets import AssetSet
from harness.device.layout import MANIFEST_DIR, SYNC_TMP_MARK
from harness.errors import UsageError

TMP_MARK = SYNC_TMP_MARK
MANIFEST_VERSION = 1
U32 = 0xFFFFFFFF  # sync v1 listings carry 32-bit sizes
HASH_WORKERS = 4


def phone_mode(mode: int) -> int:
    """The mode a pushed file gets on a phone: AOSP packages/modules/adb,
    daemon/file_sync_service.cpp, send_impl ("Copy user permission bits to "group" and
    "other" permissions"): ``mode &= 0777; mode |= (mode >> 3) & 0070; mode |= (mode >> 3)
    & 0007``. Idempotent, so it also compares a listed mode with a local one."""
    mode &= 0o777
    mode |= (mode >> 3) & 0o070
    mode |= (mode >> 3) & 0o007
    return mode


@dataclass(frozen=True)
class LocalFile:
    dest_root: str  # the entry's device destination
    rel: str  # path under dest_root ("" for a single-file destination)
    path: str  # local file (a str: thousands of Path objects cost more than the scan)
    size: int
    mtime: int  # seconds, as the sync protocol carries it
    mode: int
    sha256: str

    @property
    def remote(self) -> str:
        return self.dest_root if not self.rel else f"{self.dest_root}/{self.rel}"


@dataclass(frozen=True)
class RemoteFile:
    size: int
    mtime: int
    mode: int


@dataclass
class SetPlan:
    asset_set: str
    local: list[LocalFile]
    push: list[LocalFile] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # changed/deleted behind our back
    chmod: list[LocalFile] = field(default_factory=list)  # same content, another phone mode
    delete: list[str] = field(default_factory=list)
    stale_tmp: list[str] = field(default_factory=list)
    unchanged: int = 0
    manifest_current: bool = False  # the phone's manifest already says exactly this
    # Destinations with nothing on the phone yet: pushed into one staged directory that is
    # renamed into place whole (one rename instead of one per file).
    staged: set[str] = field(default_factory=set)

    def tmp_name(self, f: LocalFile, token: str) -> str:
        if f.dest_root in self.staged:
            return f"{f.dest_root}{TMP_MARK}{token}/{f.rel}"
        return f.remote + TMP_MARK + token

    @property
    def push_bytes(self) -> int:
        return sum(f.size for f in self.push)


def _walk(top: Path) -> list[tuple[str, str, os.stat_result, bool]]:
    """(relative posix path, path, stat, is a symlink) of every file under ``top``, sorted;
    everything comes from scandir's entries, without a syscall per file where avoidable."""
    found = []
    stack = [(str(top), "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_dir():  # follows symlinks, as the files below are pushed as files
                stack.append((entry.path, rel + "/"))
            else:
                found.append((rel, entry.path, entry.stat(), entry.is_symlink()))
    found.sort(key=lambda item: item[0])
    return found


def scan_set(asset_set: AssetSet, cache: HashCache) -> list[LocalFile]:
    """The local files of a set, hashed through the cache (only new/changed files hash)."""
    found: list[tuple[str, str, str, int | None, os.stat_result]] = []
    for entry in asset_set.entries:
        src = entry.src
        if not src.exists():
            raise UsageError(f"asset set {asset_set.name}: {src} does not exist")
        if src.is_file():
            found.append((entry.dest, "", str(src), entry.mode, src.stat()))
            continue
        real_root = src.resolve()
        for rel, path, st, is_link in _walk(src):
            if is_link and not Path(path).resolve().is_relative_to(real_root):
                raise UsageError(f"asset set {asset_set.name}: {path} is a symlink "
                                 f"escaping {src}")
            if "\n" in rel or TMP_MARK in rel:
                raise UsageError(f"asset set {asset_set.name}: unsupported file name {rel!r}")
            found.append((entry.dest, rel, path, entry.mode, st))
    hashes = cache.hash_many([item[2] for item in found], workers=HASH_WORKERS,
                             stats=[item[4] for item in found])
    return [LocalFile(dest, rel, path, st.st_size, int(st.st_mtime),
                      mode if mode is not None else st.st_mode & 0o777, hashes[path])
            for dest, rel, path, mode, st in found]


def manifest_path(set_name: str) -> str:
    return f"{MANIFEST_DIR}/{set_name}.json"


@dataclass
class RemoteState:
    manifests: dict[str, dict[str, dict[str, list[object]]]]
    listings: dict[str, dict[str, RemoteFile]]  # dest -> full device path -> file
    stale: list[str]  # temporaries of interrupted runs (files or staged directories)


def _parse_manifest(data: bytes) -> dict[str, dict[str, list[object]]]:
    try:
        parsed = json.loads(data)
    except ValueError:
        return {}  # corrupt: everything is re-checked against the listing
    if isinstance(parsed, dict) and parsed.get("version") == MANIFEST_VERSION:
        entries = parsed.get("entries", {})
        return entries if isinstance(entries, dict) else {}
    return {}


def read_remote_state(client: SyncClient, sets: Sequence[AssetSet],
                      dir_dests: set[str]) -> tuple[RemoteState, int]:
    """Manifests, recursive listings of every destination and stale temporaries, read
    through pipelined sync STAT/LIST/RECV batches (one batch per directory depth)."""
    names = [s.name for s in sets]
    dests = sorted({e.dest for s in sets for e in s.entries})
    batch: list[tuple[bytes, str]] = [(b"STAT", manifest_path(n)) for n in names]
    parents = sorted({posixpath.dirname(d) for d in dests})
    batch += [(b"LIST", p) for p in parents]
    batch += [(b"STAT", d) for d in dests if d not in dir_dests]
    batch += [(b"LIST", d) for d in dests if d in dir_dests]
    state = RemoteState({}, {d: {} for d in dests}, [])
    owner: dict[str, str] = {d: d for d in dests if d in dir_dests}  # dir -> its dest root
    batches = 0
    while batch:
        replies = client.batch(batch)
        batches += 1
        follow: list[tuple[bytes, str]] = []
        for (tag, path), reply in zip(batch, replies, strict=True):
            if tag == b"STAT" and path.startswith(MANIFEST_DIR):
                name = posixpath.basename(path)[: -len(".json")]
                if stat.S_ISREG(reply[0]):
                    follow.append((b"RECV", path))
                else:
                    state.manifests[name] = {}
            elif tag == b"RECV":
                state.manifests[posixpath.basename(path)[: -len(".json")]] = \
                    _parse_manifest(reply)
            elif tag == b"STAT":  # a single-file destination
                if reply[0]:
                    state.listings[path][path] = RemoteFile(reply[1], reply[2],
                                                            reply[0] & 0o777)
            elif path in parents and path not in owner:
                for entry in reply:
                    full = f"{path}/{entry.name}" if path != "/" else f"/{entry.name}"
                    if TMP_MARK in entry.name and any(
                            entry.name.startswith(posixpath.basename(d) + TMP_MARK)
                            for d in dests if posixpath.dirname(d) == path):
                        state.stale.append(full)
            else:  # a directory under a destination
                root = owner[path]
                for entry in reply:
                    full = f"{path}/{entry.name}"
                    if stat.S_ISDIR(entry.mode):
                        owner[full] = root
                        follow.append((b"LIST", full))
                    elif TMP_MARK in entry.name:
                        state.stale.append(full)
                    else:
                        state.listings[root][full] = RemoteFile(entry.size, entry.mtime,
                                                                entry.mode & 0o777)
        batch = follow
    return state, batches


def plan_set(asset_set: AssetSet, local: list[LocalFile], remote: RemoteState,
             delete: bool) -> SetPlan:
    plan = SetPlan(asset_set.name, local)
    manifest = remote.manifests.get(asset_set.name, {})
    wanted: set[str] = set()
    for f in local:
        wanted.add(f.remote)
        listed = remote.listings.get(f.dest_root, {}).get(f.remote)
        recorded = manifest.get(f.dest_root, {}).get(f.rel)
        if listed is None:
            plan.push.append(f)
            if recorded is not None:
                plan.repaired.append(f.remote)
            continue
        same_as_local = (listed.size, listed.mtime) == (f.size & U32, f.mtime)
        mode_ok = phone_mode(listed.mode) == phone_mode(f.mode)
        if recorded is not None:
            r_size, r_mtime, _r_mode, r_sha = recorded
            if (listed.size, listed.mtime) != (int(str(r_size)) & U32, r_mtime):
                plan.push.append(f)
                plan.repaired.append(f.remote)
            elif r_sha != f.sha256 or not same_as_local:
                plan.push.append(f)
            elif not mode_ok:
                plan.chmod.append(f)
            else:
                plan.unchanged += 1
        elif same_as_local:
            # An interrupted run's renamed file: trusted, --verify checks.
            if mode_ok:
                plan.unchanged += 1
            else:
                plan.chmod.append(f)
        else:
            plan.push.append(f)
    plan.manifest_current = manifest == manifest_entries(local)
    dests = {f.dest_root for f in local} | {e.dest for e in asset_set.entries}
    plan.stale_tmp = [p for p in remote.stale
                      if any(p.startswith(d + TMP_MARK) or p.startswith(d + "/") for d in dests)]
    plan.staged = {d for d in {f.dest_root for f in local if f.rel}
                   if not remote.listings.get(d)}
    for dest in dests:
        for path in remote.listings.get(dest, {}):
            if delete and path not in wanted:
                plan.delete.append(path)
    return plan


def manifest_entries(local: Sequence[LocalFile]) -> dict[str, dict[str, list[object]]]:
    entries: dict[str, dict[str, list[object]]] = {}
    for f in local:
        entries.setdefault(f.dest_root, {})[f.rel] = [f.size, f.mtime, f.mode, f.sha256]
    return entries


def manifest_json(plan: SetPlan) -> bytes:
    return json.dumps({"version": MANIFEST_VERSION, "set": plan.asset_set,
                       "written": int(time.time()), "entries": manifest_entries(plan.local)},
                      separators=(",", ":")).encode()


def set_status(plan: SetPlan) -> tuple[str, str]:
    """("present" | "stale" | "missing", detail) for ``harness assets status``."""
    if not plan.push and not plan.chmod and plan.manifest_current:
        return "present", f"{len(plan.local)} file(s)"
    if len(plan.push) == len(plan.local) and plan.unchanged == 0:
        return "missing", f"{len(plan.push)} file(s) to push"
    detail = f"{len(plan.push)} of {len(plan.local)} file(s) to push"
    if plan.chmod:
        detail += f", {len(plan.chmod)} mode(s) to change"
    if plan.repaired:
        detail += f", {len(plan.repaired)} changed on the phone"
    return "stale", detail
