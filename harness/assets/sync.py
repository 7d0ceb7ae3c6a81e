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
import posixpath
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.assets.adbsync import PushItem, SyncClient
from harness.assets.errors import InsufficientSpace, SyncConnectionLost
from harness.assets.hashcache import HashCache
from harness.assets.sets import AssetSet
from harness.assets.space import (
    DEFAULT_BLOCK_BYTES,
    INODE_OVERHEAD_BYTES,
    MAX_BLOCK_BYTES,
    SECTION,
    DiskSpace,
    parse_space,
    space_needed,
    tmp_roots,
)
from harness.assets.state import (
    HASH_WORKERS,
    MANIFEST_VERSION,
    U32,
    LocalFile,
    RemoteFile,
    RemoteState,
    SetPlan,
    manifest_json,
    phone_mode,
    plan_set,
    read_remote_state,
    scan_set,
    set_status,
)
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
from harness.errors import HarnessError
from harness.logs import get_logger

log = get_logger(__name__)

SCRIPT_DIR = SYNC_SCRIPT_DIR  # the names this module and its tests use
TMP_MARK = SYNC_TMP_MARK
FREE_SPACE_MARGIN_BYTES = 16 * 1024 * 1024  # leave the phone's /data some room
VERIFY_PARALLEL = 4  # sha256sum processes on the phone
SYNC_RETRIES = 3  # times a sync starts again after its connection or adb server died
LOST_CONNECTION = (SyncConnectionLost, DeviceDisconnected, AdbServerUnreachable,
                   DeviceNotFound, DeviceOffline)

ProgressFn = Callable[[int, int, str], None]  # (bytes done, bytes total, device path)


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


def _manifest_path(set_name: str) -> str:
    return f"{MANIFEST_DIR}/{set_name}.json"


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

    def _probe_space(self, plans: Sequence[SetPlan], sweep: bool = False) -> DiskSpace:
        """One round trip: remove temporaries left by dead pushes (we hold the phone's
        lease, so none is in use), then read free space, block size, free inodes.

        Without ``sweep``: the temporaries of these sets, which the listing found, by name.
        With it: every harness temporary under the folders that can hold one (a ``find``
        over them: ~20-40 ms on a phone holding a few thousand files, so only when the
        space is short: other sets' dead pushes may be what fills the phone).
        """
        own = None if self._resume is None else TMP_MARK + self._resume.token
        if sweep:
            keep = "" if own is None else f"! -name {devshell.quote('*' + own + '*')} "
            remove = (f"find {' '.join(devshell.quote(r) for r in tmp_roots(plans))} "
                      f"-name '*{TMP_MARK}*' {keep}-prune -exec rm -rf {{}} + 2>/dev/null; ")
        else:
            known = [t for p in plans for t in p.stale_tmp if own is None or own not in t]
            remove = "".join(f"rm -rf {devshell.quote(t)} 2>/dev/null; " for t in known)
        out = self._shell(
            f"{remove}rm -rf {devshell.quote(SCRIPT_DIR)} 2>/dev/null; "
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
            try:
                self._check_space(plans, self._probe_space(plans))
            except InsufficientSpace:  # look again once every dead push's leftovers are gone
                self._check_space(plans, self._probe_space(plans, sweep=True))
        if _has_work(plans):
            self._apply(plans, progress)
        result = self._result(sets, plans, start)
        if verify:
            result = self.verify(plans, result)
        return result

    def check(self, sets: Sequence[AssetSet], delete: bool = False) -> SyncResult | None:
        """Read only: the phone's listing against the local files, as a sync begins. The
        result when the phone is up to date (nothing to push, chmod, delete, no temporary
        to remove, no manifest to write), else None: then the local scan is kept for the
        sync that follows, which lists the phone again (under the caller's lease)."""
        start = time.monotonic()
        self.round_trips = 0
        plans = self.plan(sets, delete)
        if _has_work(plans):
            self.scanned = {p.asset_set: p.local for p in plans}
            return None
        return self._result(sets, plans, start)

    def _result(self, sets: Sequence[AssetSet], plans: Sequence[SetPlan],
                start: float) -> SyncResult:
        return SyncResult(
            serial=self.device.serial, sets=tuple(s.name for s in sets),
            files_total=sum(len(p.local) for p in plans),
            pushed=tuple(f.remote for p in plans for f in p.push),
            pushed_bytes=sum(p.push_bytes for p in plans),
            deleted=tuple(d for p in plans for d in p.delete),
            repaired=tuple(r for p in plans for r in p.repaired),
            round_trips=self.round_trips, seconds=time.monotonic() - start,
            chmodded=tuple(f.remote for p in plans for f in p.chmod))

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
                           int(time.time()), data=manifest_json(p)) for p in plans]
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
        roots = [*tmp_roots(plans), MANIFEST_DIR, SCRIPT_DIR]
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


def _has_work(plans: Sequence[SetPlan]) -> bool:
    return any(p.push or p.chmod or p.delete or p.stale_tmp or not p.manifest_current
               for p in plans)


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
              progress: Callable[[str, int, int, str], None] | None = None,
              hold: Callable[[Sequence[Device]], contextlib.AbstractContextManager[object]]
              | None = None,
              ) -> list[SyncResult]:
    """Sync the same sets to several phones in parallel (one thread per phone).

    ``hold``, when given, is entered around the writes (the caller's leases of the phones
    it is given). The phones are first only read, without it: those already up to date are
    done (a no-op push takes no lease, as ``adb push --sync`` takes none); the others are
    synced under ``hold``, listed again once it is held. With ``verify`` every phone is
    hashed, so every phone is held.
    """
    cache = HashCache.open_default()
    # Several phones: scan and hash once, up front, not once per phone. One phone: its
    # Syncer's own scan (overlapping the phone's listing) is the only one.
    scanned = {s.name: scan_set(s, cache) for s in sets} if len(devices) > 1 else None
    syncers = {d.serial: Syncer(d, cache) for d in devices}
    for syncer in syncers.values():
        syncer.scanned = scanned
    done: dict[str, SyncResult] = {}
    workers = max(1, len(devices))
    if hold is not None and not verify:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            checked = pool.map(lambda d: syncers[d.serial].check(sets, delete), devices)
            done = {r.serial: r for r in checked if r is not None}

    def one(device: Device) -> SyncResult:
        def on_progress(done: int, total: int, path: str) -> None:
            if progress is not None:
                progress(device.serial, done, total, path)

        return syncers[device.serial].sync(sets, delete, on_progress, verify)

    busy = [d for d in devices if d.serial not in done]
    if busy:
        with hold(busy) if hold is not None else contextlib.nullcontext(), \
                concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            done.update((r.serial, r) for r in pool.map(one, busy))
    return [done[d.serial] for d in devices]


__all__ = [  # what callers and tests import from here, wherever it is defined
    "DEFAULT_BLOCK_BYTES",
    "HASH_WORKERS",
    "INODE_OVERHEAD_BYTES",
    "MANIFEST_VERSION",
    "MAX_BLOCK_BYTES",
    "SECTION",
    "U32",
    "DiskSpace",
    "LocalFile",
    "RemoteFile",
    "RemoteState",
    "SetPlan",
    "SyncResult",
    "Syncer",
    "parse_sha256sum",
    "parse_space",
    "phone_mode",
    "plan_set",
    "read_remote_state",
    "scan_set",
    "set_status",
    "space_needed",
    "sync_many",
]
