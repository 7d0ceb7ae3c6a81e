"""Asset sync: gigabytes of weights pushed once, verified, never half-written.

For each asset set a manifest on the phone (``/data/local/tmp/.harness/manifests/<set>.json``)
records, per destination and relative path, the size, mtime, mode and sha256 of what harness
put there. A sync costs:

1. one shell round trip reading every manifest, a size/mtime/mode listing of every
   destination and the free space — an unchanged set stops here, whatever its file count;
2. one sync connection streaming every new or changed file under a temporary name
   (``NAME.harness-tmp-TOKEN``, never the final name), plus the new manifest and a script;
3. one shell round trip running that script: rename into place, delete (``--delete``),
   remove stale temporaries of interrupted runs, install the manifest.

A file changed or deleted behind our back disagrees with the manifest's size/mtime in the
listing and is pushed again; ``verify`` hashes on the phone.
"""

from __future__ import annotations

import concurrent.futures
import json
import posixpath
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import devshell
from harness.adbsync import PushItem, SyncClient
from harness.asset_sets import AssetSet
from harness.device import Device
from harness.errors import DeviceError, UsageError
from harness.hashcache import HashCache

MANIFEST_DIR = "/data/local/tmp/.harness/manifests"
SCRIPT_DIR = "/data/local/tmp/.harness/tmp"
TMP_MARK = ".harness-tmp-"
SECTION = "@@harness-sync:"
MANIFEST_VERSION = 1
FREE_SPACE_MARGIN_BYTES = 16 * 1024 * 1024  # leave the phone's /data some room
HASH_WORKERS = 4
VERIFY_PARALLEL = 4  # sha256sum processes on the phone

ProgressFn = Callable[[int, int, str], None]  # (bytes done, bytes total, device path)


class InsufficientSpace(DeviceError):
    """The phone lacks the free space the push needs; nothing was pushed."""


@dataclass(frozen=True)
class LocalFile:
    dest_root: str  # the entry's device destination
    rel: str  # path under dest_root ("" for a single-file destination)
    path: Path
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
    delete: list[str] = field(default_factory=list)
    stale_tmp: list[str] = field(default_factory=list)
    unchanged: int = 0
    manifest_current: bool = False  # the phone's manifest already says exactly this

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

    @property
    def changed(self) -> bool:
        return bool(self.pushed or self.deleted)


def scan_set(asset_set: AssetSet, cache: HashCache) -> list[LocalFile]:
    """The local files of a set, hashed through the cache (only new/changed files hash)."""
    found: list[tuple[str, str, Path, int | None]] = []
    for entry in asset_set.entries:
        src = entry.src
        if not src.exists():
            raise UsageError(f"asset set {asset_set.name}: {src} does not exist")
        if src.is_file():
            found.append((entry.dest, "", src, entry.mode))
            continue
        real_root = src.resolve()
        for path in sorted(src.rglob("*")):
            if path.is_dir():
                continue
            rel = path.relative_to(src).as_posix()
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(real_root):
                    raise UsageError(f"asset set {asset_set.name}: {path} is a symlink "
                                     f"escaping {src}")
            if "\n" in rel or TMP_MARK in rel:
                raise UsageError(f"asset set {asset_set.name}: unsupported file name {rel!r}")
            found.append((entry.dest, rel, path, entry.mode))
    hashes = cache.hash_many([p for _, _, p, _ in found], workers=HASH_WORKERS)
    files = []
    for dest, rel, path, mode in found:
        st = path.stat()
        files.append(LocalFile(dest, rel, path, st.st_size, int(st.st_mtime),
                               mode if mode is not None else st.st_mode & 0o777,
                               hashes[path]))
    return files


def _manifest_path(set_name: str) -> str:
    return f"{MANIFEST_DIR}/{set_name}.json"


def remote_state_command(sets: Sequence[AssetSet]) -> str:
    parts = []
    for s in sets:
        q = devshell.quote(_manifest_path(s.name))
        parts.append(f"echo {devshell.quote(SECTION + 'manifest ' + s.name)}; "
                     f"cat {q} 2>/dev/null; echo")
        for dest in sorted({e.dest for e in s.entries}):
            d = devshell.quote(dest)
            parts.append(
                f"echo {devshell.quote(SECTION + 'list ' + dest)}; "
                f"if [ -d {d} ]; then find {d} \\( -type f -o -type l \\) "
                f"-exec stat -c '%s %Y %a %n' {{}} + 2>/dev/null; "
                f"elif [ -e {d} ]; then stat -c '%s %Y %a %n' {d}; fi")
    parts.append(f"echo {SECTION}df; df -k /data/local/tmp 2>/dev/null | tail -n 1")
    return "; ".join(parts)


@dataclass
class RemoteState:
    manifests: dict[str, dict[str, dict[str, list[object]]]]
    listings: dict[str, dict[str, RemoteFile]]  # dest -> full device path -> file
    free_kb: int | None


def parse_remote_state(text: str) -> RemoteState:
    manifests: dict[str, dict[str, dict[str, list[object]]]] = {}
    listings: dict[str, dict[str, RemoteFile]] = {}
    free_kb = None
    kind, name = "", ""
    for line in text.splitlines():
        if line.startswith(SECTION):
            kind, _, name = line[len(SECTION):].partition(" ")
            if kind == "list":
                listings[name] = {}
            continue
        if kind == "manifest" and line.strip():
            try:
                data = json.loads(line)
                if data.get("version") == MANIFEST_VERSION:
                    manifests[name] = data.get("entries", {})
            except ValueError:
                manifests[name] = {}  # corrupt manifest: everything is re-verified
        elif kind == "list":
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[0].isdigit() and parts[1].isdigit():
                listings[name][parts[3]] = RemoteFile(int(parts[0]), int(parts[1]),
                                                      int(parts[2], 8))
        elif kind == "df":
            cols = line.split()
            if len(cols) >= 4 and cols[3].isdigit():
                free_kb = int(cols[3])
    return RemoteState(manifests, listings, free_kb)


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
        same_as_local = (listed.size, listed.mtime, listed.mode) == (f.size, f.mtime, f.mode)
        if recorded is not None:
            r_size, r_mtime, r_mode, r_sha = recorded
            if (listed.size, listed.mtime) != (r_size, r_mtime):
                plan.push.append(f)
                plan.repaired.append(f.remote)
            elif r_sha != f.sha256 or r_mode != f.mode or not same_as_local:
                plan.push.append(f)
            else:
                plan.unchanged += 1
        elif same_as_local:
            plan.unchanged += 1  # an interrupted run's renamed file: trusted, --verify checks
        else:
            plan.push.append(f)
    plan.manifest_current = manifest == _manifest_entries(local)
    for dest in {f.dest_root for f in local} | {e.dest for e in asset_set.entries}:
        for path in remote.listings.get(dest, {}):
            if TMP_MARK in posixpath.basename(path):
                plan.stale_tmp.append(path)
            elif delete and path not in wanted:
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
        for path in plan.stale_tmp + plan.delete:
            lines.append(f"rm -f {devshell.quote(path)} || rc=1")
        for f in plan.push:
            lines.append(f"mv -f {devshell.quote(f.remote + TMP_MARK + token)} "
                         f"{devshell.quote(f.remote)} || rc=1")
        m = _manifest_path(plan.asset_set)
        lines.append(f"mv -f {devshell.quote(m + TMP_MARK + token)} {devshell.quote(m)} "
                     "|| rc=1")
    lines.append("exit $rc")
    return "\n".join(lines) + "\n"


class Syncer:
    """Sync asset sets to one phone. Counts its adb round trips."""

    def __init__(self, device: Device, cache: HashCache | None = None) -> None:
        self.device = device
        self.cache = cache or HashCache.open_default()
        self.round_trips = 0

    def _shell(self, command: str, timeout: float = 600) -> str:
        self.round_trips += 1
        return self.device.run(command, timeout=timeout, check=True).out

    def plan(self, sets: Sequence[AssetSet], delete: bool = False) -> list[SetPlan]:
        local = {s.name: scan_set(s, self.cache) for s in sets}
        remote = parse_remote_state(self._shell(remote_state_command(sets)))
        self._free_kb = remote.free_kb
        return [plan_set(s, local[s.name], remote, delete) for s in sets]

    def sync(self, sets: Sequence[AssetSet], delete: bool = False,
             progress: ProgressFn | None = None, verify: bool = False) -> SyncResult:
        start = time.monotonic()
        self.round_trips = 0
        plans = self.plan(sets, delete)
        needed = sum(p.push_bytes for p in plans)
        self._check_space(needed)
        if any(p.push or p.delete or p.stale_tmp or not p.manifest_current for p in plans):
            self._apply(plans, progress)
        result = SyncResult(
            serial=self.device.serial, sets=tuple(s.name for s in sets),
            files_total=sum(len(p.local) for p in plans),
            pushed=tuple(f.remote for p in plans for f in p.push), pushed_bytes=needed,
            deleted=tuple(d for p in plans for d in p.delete),
            repaired=tuple(r for p in plans for r in p.repaired),
            round_trips=self.round_trips, seconds=time.monotonic() - start)
        if verify:
            result = self.verify(plans, result)
        return result

    def _check_space(self, needed: int) -> None:
        if needed and self._free_kb is not None:
            free = self._free_kb * 1024
            if needed + FREE_SPACE_MARGIN_BYTES > free:
                short = needed + FREE_SPACE_MARGIN_BYTES - free
                raise InsufficientSpace(
                    f"needs {needed / 1e6:.1f} MB on /data but only {free / 1e6:.1f} MB "
                    f"are free (short by {short / 1e6:.1f} MB); nothing was pushed",
                    serial=self.device.serial, hint="free space on the phone or sync fewer "
                                                    "sets")

    def _apply(self, plans: Sequence[SetPlan], progress: ProgressFn | None) -> None:
        token = uuid.uuid4().hex[:10]
        total = sum(p.push_bytes for p in plans)
        done = [0]

        def on_chunk(n: int, remote: str) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], total, remote.split(TMP_MARK)[0])

        items = [PushItem(f.remote + TMP_MARK + token, f.mode, f.mtime, local=f.path)
                 for p in plans for f in p.push]
        items += [PushItem(_manifest_path(p.asset_set) + TMP_MARK + token, 0o644,
                           int(time.time()), data=_manifest_json(p)) for p in plans]
        script = f"{SCRIPT_DIR}/finish-{token}.sh"
        items.append(PushItem(script, 0o755, int(time.time()),
                              data=_finish_script(plans, token).encode()))
        self.round_trips += 1
        with SyncClient(self.device) as client:
            client.push_many(items, on_chunk)
        out = self.device.run(f"sh {devshell.quote(script)}; rc=$?; "
                              f"rm -f {devshell.quote(script)}; exit $rc", timeout=600)
        self.round_trips += 1
        if not out.ok:
            raise DeviceError(f"sync could not put files in place: "
                              f"{out.err.strip().splitlines()[-1:] or out.exit_code}",
                              serial=self.device.serial)

    def verify(self, plans: Sequence[SetPlan], result: SyncResult) -> SyncResult:
        """Hash every file on the phone and compare; mismatches are pushed again."""
        paths = [f.remote for p in plans for f in p.local]
        want = {f.remote: f.sha256 for p in plans for f in p.local}
        listing = "\n".join(paths) + "\n"
        script = f"{SCRIPT_DIR}/verify-{uuid.uuid4().hex[:10]}.txt"
        self.round_trips += 1
        self.device.push_bytes(listing.encode(), script)
        out = self._shell(f"tr '\\n' '\\0' < {devshell.quote(script)} | "
                          f"xargs -0 -n 64 -P {VERIFY_PARALLEL} sha256sum 2>/dev/null; "
                          f"rm -f {devshell.quote(script)}; true", timeout=3600)
        got = {}
        for line in out.splitlines():
            digest, _, path = line.partition("  ")
            got[path] = digest
        bad = sorted(p for p in paths if got.get(p) != want[p])
        if bad:
            bad_set = set(bad)
            for plan in plans:
                plan.push = [f for f in plan.local if f.remote in bad_set]
                plan.delete, plan.stale_tmp = [], []
            self._apply(plans, None)
        return SyncResult(result.serial, result.sets, result.files_total,
                          result.pushed + tuple(b for b in bad if b not in result.pushed),
                          result.pushed_bytes, result.deleted, result.repaired,
                          self.round_trips, result.seconds, len(paths), tuple(bad))


def sync_many(devices: Sequence[Device], sets: Sequence[AssetSet], delete: bool = False,
              verify: bool = False,
              progress: Callable[[str, int, int, str], None] | None = None) -> list[SyncResult]:
    """Sync the same sets to several phones in parallel (one thread per phone)."""
    cache = HashCache.open_default()
    for s in sets:
        scan_set(s, cache)  # hash once, up front, not once per phone

    def one(device: Device) -> SyncResult:
        def on_progress(done: int, total: int, path: str) -> None:
            if progress is not None:
                progress(device.serial, done, total, path)

        return Syncer(device, cache).sync(sets, delete, on_progress, verify)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(devices))) as pool:
        return list(pool.map(one, devices))


def set_status(plan: SetPlan) -> tuple[str, str]:
    """("present" | "stale" | "missing", detail) for ``harness assets status``."""
    if not plan.push and plan.manifest_current:
        return "present", f"{len(plan.local)} file(s)"
    if len(plan.push) == len(plan.local) and plan.unchanged == 0:
        return "missing", f"{len(plan.push)} file(s) to push"
    detail = f"{len(plan.push)} of {len(plan.local)} file(s) to push"
    if plan.repaired:
        detail += f", {len(plan.repaired)} changed on the phone"
    return "stale", detail
