"""Asset sync: gigabytes of weights pushed once, verified, never half-written.

For each asset set a manifest on the phone (``/data/local/tmp/.harness/manifests/<set>.json``)
records, per destination and relative path, the size, mtime, mode and sha256 of what harness
put there. A sync costs:

1. one sync connection reading every manifest and a recursive size/mtime/mode listing of
   every destination, as pipelined STAT/LIST/RECV batches — one batch per directory depth,
   whatever the file count. An unchanged set stops here;
2. one shell round trip for the free space (only when there is something to push);
3. one sync connection streaming every new or changed file under a temporary name (never
   the final name), plus the new manifest and a finishing script. A destination with
   nothing on the phone yet is pushed as one staged directory;
4. one shell round trip running that script: rename into place (one ``mv`` per staged
   destination, one per changed file elsewhere), delete (``--delete``), remove temporaries
   of interrupted runs, install the manifest.

A file is unchanged when its content (sha256, as the manifest records it), size and mtime are
as recorded and its mode is what a push of the local mode leaves on the phone. AOSP's adbd
does not keep a pushed file's mode (:func:`phone_mode`: 0644 arrives as 0666, 0755 as
0777), so modes are compared only through that rule; a local mode change that the rule
maps to another phone mode (a file that becomes executable) is applied with a ``chmod`` in
the finishing script, without pushing the file again.

A file changed or deleted behind our back disagrees with the manifest's size/mtime in the
listing and is pushed again; ``verify`` hashes on the phone. Sync v1 carries 32-bit sizes:
files of 4 GiB or more compare modulo 2**32 in the listing (the sha256 still differs).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import posixpath
import stat
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.assets.adbsync import PushItem, SyncClient
from harness.assets.errors import InsufficientSpace, SyncConnectionLost
from harness.assets.hashcache import HashCache
from harness.assets.sets import AssetSet
from harness.device import devshell
from harness.device.device import Device
from harness.device.errors import (
    AdbServerUnreachable,
    DeviceDisconnected,
    DeviceNotFound,
    DeviceOffline,
)
from harness.device.layout import DEVICE_TMP as DEVICE_TMP
from harness.device.layout import MANIFEST_DIR as MANIFEST_DIR
from harness.device.layout import SYNC_SCRIPT_DIR, SYNC_TMP_MARK
from harness.errors import HarnessError, UsageError

log = logging.getLogger(__name__)

SCRIPT_DIR = SYNC_SCRIPT_DIR  # the names this module and its tests use
TMP_MARK = SYNC_TMP_MARK
SECTION = "@@harness-sync:"
MANIFEST_VERSION = 1
U32 = 0xFFFFFFFF  # sync v1 listings carry 32-bit sizes
FREE_SPACE_MARGIN_BYTES = 16 * 1024 * 1024  # leave the phone's /data some room
DEFAULT_BLOCK_BYTES = 4096  # ext4 and f2fs on phones; used when `stat -f` says nothing
MAX_BLOCK_BYTES = 1024 * 1024  # a block size above this is a misread, not a filesystem
# An inode (256 bytes on ext4, f2fs keeps one 4 KiB node block per inode but packs small
# files inline) plus a directory entry: what a file costs beyond its data blocks.
INODE_OVERHEAD_BYTES = 512
HASH_WORKERS = 4
VERIFY_PARALLEL = 4  # sha256sum processes on the phone
SYNC_RETRIES = 3  # times a sync starts again after its connection or adb server died
LOST_CONNECTION = (SyncConnectionLost, DeviceDisconnected, AdbServerUnreachable,
                   DeviceNotFound, DeviceOffline)

ProgressFn = Callable[[int, int, str], None]  # (bytes done, bytes total, device path)


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


@dataclass(frozen=True)
class SyncResult:
    serial: str
    sets: tuple[str, ...]
    files_total: int
    pushed: tuple[str, ...]
    pushed_bytes: int
    deleted: tuple[str, ...]
    repaired: tuple[str, ...]
    round_trips: int
    seconds: float
    verified: int = 0
    mismatched: tuple[str, ...] = ()
    chmodded: tuple[str, ...] = ()  # not pushed: only their mode changed

    @property
    def changed(self) -> bool:
        return bool(self.pushed or self.deleted or self.chmodded)


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


def _manifest_path(set_name: str) -> str:
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
    batch: list[tuple[bytes, str]] = [(b"STAT", _manifest_path(n)) for n in names]
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
    plan.manifest_current = manifest == _manifest_entries(local)
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


def _manifest_entries(local: Sequence[LocalFile]) -> dict[str, dict[str, list[object]]]:
    entries: dict[str, dict[str, list[object]]] = {}
    for f in local:
        entries.setdefault(f.dest_root, {})[f.rel] = [f.size, f.mtime, f.mode, f.sha256]
    return entries


def _manifest_json(plan: SetPlan) -> bytes:
    return json.dumps({"version": MANIFEST_VERSION, "set": plan.asset_set,
                       "written": int(time.time()), "entries": _manifest_entries(plan.local)},
                      separators=(",", ":")).encode()


def _finish_script(plans: Sequence[SetPlan], token: str) -> str:
    lines = ["#!/system/bin/sh", "rc=0"]
    for plan in plans:
        for path in plan.stale_tmp:
            lines.append(f"rm -rf {devshell.quote(path)}")
        for path in plan.delete:
            lines.append(f"rm -f {devshell.quote(path)} || rc=1")
        for dest in sorted(plan.staged):
            q = devshell.quote(dest)
            lines.append(f"rm -rf {q} && mkdir -p {devshell.quote(posixpath.dirname(dest))} "
                         f"&& mv {devshell.quote(dest + TMP_MARK + token)} {q} || rc=1")
        for f in plan.push:
            if f.dest_root not in plan.staged:
                lines.append(f"mv -f {devshell.quote(f.remote + TMP_MARK + token)} "
                             f"{devshell.quote(f.remote)} || rc=1")
        for f in plan.chmod:
            lines.append(f"chmod {phone_mode(f.mode):o} {devshell.quote(f.remote)} || rc=1")
        m = _manifest_path(plan.asset_set)
        lines.append(f"mv -f {devshell.quote(m + TMP_MARK + token)} {devshell.quote(m)} "
                     "|| rc=1")
    lines.append("exit $rc")
    return "\n".join(lines) + "\n"


@dataclass
class _Resume:
    """A push interrupted by a lost connection: its token and the temporaries the phone
    confirmed complete ({temporary name: (size, mtime)})."""

    token: str
    confirmed: dict[str, tuple[int, int]] = field(default_factory=dict)
    resent: int = 0  # files the last attempt had to send


class Syncer:
    """Sync asset sets to one phone. Counts its adb round trips."""

    def __init__(self, device: Device, cache: HashCache | None = None) -> None:
        self.device = device
        self.cache = cache or HashCache.open_default()
        self.round_trips = 0
        # Within one sync(): the push's token and the temporaries the phone confirmed (OKAY)
        # before a lost connection. adbd unlinks a file whose SEND did not finish
        # (daemon/file_sync_service.cpp, handle_send_file's failure path), so a confirmed
        # temporary is complete: the retry keeps it and sends only what is left.
        self._resume: _Resume | None = None
        self.scanned: dict[str, list[LocalFile]] | None = None  # local files, if scanned

    def _shell(self, command: str, timeout: float = 600) -> str:
        self.round_trips += 1
        return self.device.run(command, timeout=timeout, check=True).out

    def plan(self, sets: Sequence[AssetSet], delete: bool = False) -> list[SetPlan]:
        # The phone's listing and the local scan (stat + hash cache) overlap: one waits on
        # the phone, the other on the local disk.
        dir_dests = {e.dest for s in sets for e in s.entries if e.src.is_dir()}

        def listing() -> tuple[RemoteState, int]:
            with SyncClient(self.device) as client:
                return read_remote_state(client, sets, dir_dests)

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            remote_future = pool.submit(listing)
            local = self.scanned or {s.name: scan_set(s, self.cache) for s in sets}
            remote, batches = remote_future.result()
        self.round_trips += batches
        return [plan_set(s, local[s.name], remote, delete) for s in sets]

    def _probe_space(self, plans: Sequence[SetPlan]) -> DiskSpace:
        """One round trip: remove every harness temporary left by dead pushes (we hold the
        phone's lease, so none is in use), then read free space, block size, free inodes."""
        roots = _tmp_roots(plans)
        own = "" if self._resume is None else \
            f"! -name {devshell.quote('*' + TMP_MARK + self._resume.token + '*')} "
        out = self._shell(
            f"find {' '.join(devshell.quote(r) for r in roots)} -name '*{TMP_MARK}*' {own}"
            "-prune "
            f"-exec rm -rf {{}} + 2>/dev/null; rm -rf {devshell.quote(SCRIPT_DIR)} 2>/dev/null; "
            f"df -k {DEVICE_TMP} 2>/dev/null | tail -n 1; echo {SECTION}; "
            f"stat -f -c '%S %d' {DEVICE_TMP} 2>/dev/null; true", timeout=600)
        for plan in plans:
            plan.stale_tmp = []  # removed above
        return parse_space(out)

    def sync(self, sets: Sequence[AssetSet], delete: bool = False,
             progress: ProgressFn | None = None, verify: bool = False) -> SyncResult:
        """Sync, recovering as a run does when the connection or the adb server dies
        mid-way: wait for the phone (restarting a local or virtual farm's server,
        reconnecting network phones), then go on with what is left: the files the phone
        confirmed before the drop are kept under their temporary names, the rest is sent."""
        attempt = 0
        self._resume = None
        try:
            while True:
                try:
                    return self._sync_once(sets, delete, progress, verify)
                except LOST_CONNECTION as exc:
                    attempt += 1
                    if attempt > SYNC_RETRIES:
                        raise
                    kept = len(self._resume.confirmed) if self._resume else 0
                    log.warning("%s: sync lost its connection (%s); recovering, then going on "
                                "with what is left (%d file(s) already on the phone)",
                                self.device.serial, exc, kept)
                    self.device.recover()
        finally:
            self._resume = None

    def _sync_once(self, sets: Sequence[AssetSet], delete: bool = False,
                   progress: ProgressFn | None = None, verify: bool = False) -> SyncResult:
        start = time.monotonic()
        self.round_trips = 0
        plans = self.plan(sets, delete)
        needed = sum(p.push_bytes for p in plans)
        for p in plans:
            log.info("%s: set %s: push %d, delete %d, repair %d of %d file(s)%s",
                     self.device.serial, p.asset_set, len(p.push), len(p.delete),
                     len(p.repaired), len(p.local),
                     "" if p.manifest_current else "; manifest out of date")
        if needed or any(p.push for p in plans):
            self._check_space(plans, self._probe_space(plans))
        if any(p.push or p.chmod or p.delete or p.stale_tmp or not p.manifest_current
               for p in plans):
            self._apply(plans, progress)
        result = SyncResult(
            serial=self.device.serial, sets=tuple(s.name for s in sets),
            files_total=sum(len(p.local) for p in plans),
            pushed=tuple(f.remote for p in plans for f in p.push), pushed_bytes=needed,
            deleted=tuple(d for p in plans for d in p.delete),
            repaired=tuple(r for p in plans for r in p.repaired),
            round_trips=self.round_trips, seconds=time.monotonic() - start,
            chmodded=tuple(f.remote for p in plans for f in p.chmod))
        if verify:
            result = self.verify(plans, result)
        return result

    def _check_space(self, plans: Sequence[SetPlan], space: DiskSpace) -> None:
        needed = space_needed(plans, space.block_bytes)
        files = sum(len(p.push) for p in plans) + 2 * len(plans) + 1
        if space.free_inodes is not None and files > space.free_inodes:
            raise InsufficientSpace(
                f"needs {files} files on /data but only {space.free_inodes} inodes are free; "
                "nothing was pushed", serial=self.device.serial,
                hint="delete files on the phone or sync fewer sets")
        if space.free_bytes is None:
            return
        free = space.free_bytes
        if needed + FREE_SPACE_MARGIN_BYTES > free:
            short = needed + FREE_SPACE_MARGIN_BYTES - free
            raise InsufficientSpace(
                f"needs {needed / 1e6:.1f} MB on /data (with {space.block_bytes}-byte blocks) "
                f"but only {free / 1e6:.1f} MB are free (short by {short / 1e6:.1f} MB); "
                "nothing was pushed",
                serial=self.device.serial, hint="free space on the phone or sync fewer sets")

    def _apply(self, plans: Sequence[SetPlan], progress: ProgressFn | None) -> None:
        if self._resume is None:
            self._resume = _Resume(uuid.uuid4().hex[:10])
        resume = self._resume
        token = resume.token
        total = sum(p.push_bytes for p in plans)
        items = []
        done = [0]
        for p in plans:
            for f in p.push:
                remote = p.tmp_name(f, token)
                if resume.confirmed.get(remote) == (f.size, f.mtime):
                    done[0] += f.size  # complete on the phone since the lost attempt
                else:
                    items.append(PushItem(remote, f.mode, f.mtime, local=Path(f.path)))
        resume.resent = len(items)
        sizes = {p.tmp_name(f, token): (f.size, f.mtime) for p in plans for f in p.push}
        files = {item.remote for item in items}  # the manifests and script are not progress

        def on_chunk(n: int, remote: str) -> None:
            if remote not in files:
                return
            done[0] += n
            if progress is not None:
                progress(done[0], total, remote.split(TMP_MARK)[0])

        items += [PushItem(_manifest_path(p.asset_set) + TMP_MARK + token, 0o644,
                           int(time.time()), data=_manifest_json(p)) for p in plans]
        script = f"{SCRIPT_DIR}/finish-{token}.sh"
        items.append(PushItem(script, 0o755, int(time.time()),
                              data=_finish_script(plans, token).encode()))
        self.round_trips += 1
        confirmed: list[str] = []
        try:
            with SyncClient(self.device) as client:
                client.push_many(items, on_chunk, confirmed)
        except LOST_CONNECTION:  # keep what the phone confirmed: the retry goes on from it
            resume.confirmed.update((r, sizes[r]) for r in confirmed if r in sizes)
            raise
        except BaseException:  # a full disk, a vanished local file, Ctrl-C
            self._remove_own_tmp(plans, token)
            raise
        out = self.device.run(f"sh {devshell.quote(script)}; rc=$?; "
                              f"rm -f {devshell.quote(script)}; exit $rc", timeout=600)
        self.round_trips += 1
        if not out.ok:
            raise out.failed(f"sync could not put files in place: "
                             f"{out.err.strip().splitlines()[-1:] or out.exit_code}")

    def _remove_own_tmp(self, plans: Sequence[SetPlan], token: str) -> None:
        """After a failed push: remove what this push left under temporary names (a full
        disk must not stay full). Best effort: if the phone is gone, the next sync's
        :meth:`_probe_space` removes them."""
        roots = [*_tmp_roots(plans), MANIFEST_DIR, SCRIPT_DIR]
        command = (f"find {' '.join(devshell.quote(r) for r in roots)} "
                   f"-name {devshell.quote('*' + TMP_MARK + token + '*')} -prune "
                   f"-exec rm -rf {{}} + 2>/dev/null; "
                   f"rm -f {devshell.quote(f'{SCRIPT_DIR}/finish-{token}.sh')}; true")
        with contextlib.suppress(HarnessError):
            self.round_trips += 1
            self.device.run(command, timeout=600)

    def verify(self, plans: Sequence[SetPlan], result: SyncResult) -> SyncResult:
        """Hash every file on the phone and compare; mismatches are pushed again."""
        start = time.monotonic()
        paths = [f.remote for p in plans for f in p.local]
        want = {f.remote: f.sha256 for p in plans for f in p.local}
        # NUL-separated, so that xargs -0 (toybox has it) needs no tr on the phone.
        listing = "".join(p + "\0" for p in paths)
        script = f"{SCRIPT_DIR}/verify-{uuid.uuid4().hex[:10]}.txt"
        self.round_trips += 1
        self.device.push_bytes(listing.encode(), script)
        out = self._shell(f"xargs -0 -n 64 -P {VERIFY_PARALLEL} sha256sum "
                          f"< {devshell.quote(script)} 2>/dev/null; "
                          f"rm -f {devshell.quote(script)}; true", timeout=3600)
        got = parse_sha256sum(out)
        bad = sorted(p for p in paths if got.get(p) != want[p])
        repaired_bytes = 0
        if bad:
            bad_set = set(bad)
            for plan in plans:
                plan.push = [f for f in plan.local if f.remote in bad_set]
                plan.delete, plan.stale_tmp, plan.chmod = [], [], []
            repaired_bytes = sum(p.push_bytes for p in plans)
            self._apply(plans, None)
        return SyncResult(result.serial, result.sets, result.files_total,
                          result.pushed + tuple(b for b in bad if b not in result.pushed),
                          result.pushed_bytes + repaired_bytes, result.deleted,
                          result.repaired, self.round_trips,
                          result.seconds + time.monotonic() - start, len(paths), tuple(bad),
                          result.chmodded)


@dataclass(frozen=True)
class DiskSpace:
    """What the phone's /data has room for (None: the phone did not say)."""

    free_bytes: int | None
    block_bytes: int
    free_inodes: int | None


def parse_space(out: str) -> DiskSpace:
    """Parse ``df -k`` (last line), the section mark, then ``stat -f -c '%S %d'``.

    toybox and GNU agree: ``df -k`` columns are filesystem, 1K-blocks, used, available;
    ``stat -f`` ``%S`` is the fundamental block size, ``%d`` the free inodes.
    """
    df_text, _, stat_text = out.partition(SECTION)
    cols = df_text.split()
    free = int(cols[3]) * 1024 if len(cols) >= 4 and cols[3].isdigit() else None
    fields = stat_text.split()
    block = int(fields[0]) if fields and fields[0].isdigit() and int(fields[0]) > 0 \
        else DEFAULT_BLOCK_BYTES
    inodes = int(fields[1]) if len(fields) >= 2 and fields[1].isdigit() else None
    # Some filesystems (e.g. FAT, some FUSE) report 0 inodes: they have no inode limit.
    return DiskSpace(free, min(block, MAX_BLOCK_BYTES), inodes or None)


def space_needed(plans: Sequence[SetPlan], block_bytes: int) -> int:
    """Bytes a push occupies: each file rounded up to whole blocks plus its inode and
    directory entry, each new directory one block, and the manifests."""
    def blocks(size: int) -> int:
        return -(-size // block_bytes) * block_bytes

    total = 0
    folders: set[str] = set()
    for plan in plans:
        for f in plan.push:
            total += blocks(f.size) + INODE_OVERHEAD_BYTES
            if f.rel:
                folders.add(posixpath.dirname(f"{f.dest_root}/{f.rel}"))
        total += blocks(len(_manifest_json(plan))) + INODE_OVERHEAD_BYTES
    return total + len(folders) * (block_bytes + INODE_OVERHEAD_BYTES)


def _tmp_roots(plans: Sequence[SetPlan]) -> list[str]:
    """The folders that can hold temporaries of these sets (nested ones dropped)."""
    roots = {DEVICE_TMP} | {posixpath.dirname(f.dest_root) or "/" for p in plans
                            for f in p.local}
    kept: list[str] = []
    for root in sorted(roots):
        if not any(root == k or root.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(root)
    return kept


def _unescape_name(name: str) -> str:
    out: list[str] = []
    chars = iter(name)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append({"n": "\n", "r": "\r", "\\": "\\"}.get(nxt, "\\" + nxt))
        else:
            out.append(char)
    return "".join(out)


def parse_sha256sum(out: str) -> dict[str, str]:
    """``sha256sum`` lines -> {path: digest}.

    toybox (Android's ``md5sum.c``, ``do_hash``) prints ``HASH  NAME`` with the name raw.
    GNU coreutils escapes a name holding ``\\`` or a newline: the line then starts with
    ``\\`` and the name has ``\\\\``, ``\\n`` (and, in newer versions, ``\\r``). A digest
    is hex, so a leading backslash can only be that mark: both are read right.
    """
    got: dict[str, str] = {}
    for line in out.split("\n"):  # not splitlines(): a name may hold \r, \x1c, \u2028...
        escaped = line.startswith("\\")
        digest, sep, name = (line[1:] if escaped else line).partition("  ")
        if not sep:
            continue
        got[_unescape_name(name) if escaped else name] = digest.lower()
    return got


def sync_many(devices: Sequence[Device], sets: Sequence[AssetSet], delete: bool = False,
              verify: bool = False,
              progress: Callable[[str, int, int, str], None] | None = None) -> list[SyncResult]:
    """Sync the same sets to several phones in parallel (one thread per phone)."""
    cache = HashCache.open_default()
    # Several phones: scan and hash once, up front, not once per phone. One phone: its
    # Syncer's own scan (overlapping the phone's listing) is the only one.
    scanned = {s.name: scan_set(s, cache) for s in sets} if len(devices) > 1 else None

    def one(device: Device) -> SyncResult:
        def on_progress(done: int, total: int, path: str) -> None:
            if progress is not None:
                progress(device.serial, done, total, path)

        syncer = Syncer(device, cache)
        syncer.scanned = scanned
        return syncer.sync(sets, delete, on_progress, verify)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(devices))) as pool:
        return list(pool.map(one, devices))


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
