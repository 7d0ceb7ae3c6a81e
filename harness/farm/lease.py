"""Leases: a phone is used by one harness job at a time — across processes, users and
``HARNESS_HOME``s on this host, and across hosts that share a phone through one adb server.

Two records, both taken by :meth:`Lease.acquire`:

- on this host, an exclusive ``flock`` on ``<lease dir>/<serial>.lock``. The lease dir is
  host-wide, not per home or user: ``$HARNESS_LEASE_DIR``, by default ``/tmp/harness-leases``
  (created sticky and world-writable like ``/tmp`` itself; each lock file is made mode 0666
  so every user can lock it). The kernel releases the lock when the holder exits or dies, so
  it never outlives its holder. The holder writes who it is into the locked file (JSON).
- on the phone, ``/data/local/tmp/.harness/lease`` (``key=value`` lines: host, PID, PID
  start identity, purpose, ``heartbeat`` in the phone's clock, ``ttl``), written atomically
  (tmp + ``mv``) and refreshed by a heartbeat thread every ``ttl / 4`` seconds. Another host
  finds it and refuses while ``phone now - heartbeat < ttl``; a record whose heartbeat has
  expired (its holder died or lost the phone) is taken over. A record of this host whose
  PID is dead is stale at once. The phone's clock is the only clock both hosts see.

With a device, a new lease also looks for *orphans* — background runs still going on the
phone whose holder died (``kill -9``, a crash) — and kills them, or refuses to start when
asked to keep them (see :func:`harness.device.background.find_orphans`; the live runs are
listed in the same shell that writes the lease record).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from harness import cancel
from harness.device import devshell
from harness.device.background import (
    LiveRun,
    kill_orphans,
    live_runs_command,
    orphans_among,
    parse_live_runs,
)
from harness.device.device import Device
from harness.device.errors import DeviceError
from harness.holder import Holder as ProcessHolder
from harness.home import safe_name

LEASE_POLL_S = 0.2
DEFAULT_LEASE_DIR = "/tmp/harness-leases"  # host-wide on purpose (see above)
PHONE_LEASE = "/data/local/tmp/.harness/lease"
PHONE_LEASE_TTL_S = 60
RECORD_MARK = "@@harness-lease-now "


class LeaseBusy(DeviceError):
    """The phone is leased by another harness job."""


class OrphansFound(DeviceError):
    """Runs of a dead harness still go on the phone and were asked to be kept."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    since: float

    def describe(self) -> str:
        age = time.time() - self.since
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where} ({self.command}) for {age:.0f}s"


def lease_dir() -> Path:
    path = Path(os.environ.get("HARNESS_LEASE_DIR") or DEFAULT_LEASE_DIR)
    if not path.is_dir():
        with contextlib.suppress(FileExistsError):
            path.mkdir(parents=True)
            path.chmod(0o1777)  # sticky, like /tmp: every user may lock
    return path


def _open_lock(serial: str) -> int:
    """Open (creating) the host-wide lock file; refuse anything but a plain file there (the
    directory is shared: a symlink or hard link planted by someone else must not make us
    truncate another file)."""
    path = lease_dir() / f"{safe_name(serial)}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise DeviceError(f"cannot open the lease file {path}: {exc}", serial=serial,
                          hint="set HARNESS_LEASE_DIR to a directory every user of this "
                               "host can write") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise DeviceError(f"refusing the lease file {path}: not a plain file",
                          serial=serial)
    if info.st_uid == os.getuid():  # only the file's owner may (and need) do this
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)
    return fd


def holder_of(serial: str) -> Holder | None:
    """The current holder on this host, or None if the phone is free here."""
    path = lease_dir() / f"{safe_name(serial)}.lock"
    if not path.exists():
        return None
    fd = _open_lock(serial)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        data = os.pread(fd, 64 * 1024, 0)
    finally:
        os.close(fd)
    try:
        return Holder(**json.loads(data))
    except (ValueError, TypeError):
        return Holder(pid=0, host="?", command="unknown", since=time.time())


# ---- the record on the phone ----------------------------------------------------------------

@dataclass(frozen=True)
class PhoneLease:
    """The lease record found on a phone, with the phone's clock when it was read."""

    holder: ProcessHolder
    purpose: str
    heartbeat: int  # phone epoch seconds
    ttl: int
    phone_now: int

    @property
    def expired(self) -> bool:
        return self.phone_now - self.heartbeat >= self.ttl

    def stale(self) -> bool:
        return self.expired or self.holder.dead_here()

    def describe(self) -> str:
        age = self.phone_now - self.heartbeat
        return (f"pid {self.holder.pid} on {self.holder.host} ({self.purpose}), last "
                f"heartbeat {age}s ago by the phone's clock")


def parse_phone_lease(text: str) -> PhoneLease | None:
    """``read_phone_lease``'s output: the phone's clock line, then the record (if any)."""
    now, fields = None, {}
    for line in text.splitlines():
        if line.startswith(RECORD_MARK):
            value = line[len(RECORD_MARK):].strip()
            now = int(value) if value.isdigit() else None
        elif "=" in line:
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
    if now is None or not fields.get("pid", "").isdigit() \
            or not fields.get("heartbeat", "").isdigit():
        return None
    ttl = int(fields["ttl"]) if fields.get("ttl", "").isdigit() else PHONE_LEASE_TTL_S
    holder = ProcessHolder(fields.get("host", "?"), int(fields["pid"]), fields.get("start", ""))
    return PhoneLease(holder, fields.get("purpose", ""), int(fields["heartbeat"]), ttl, now)


LIVE_MARK = "@@harness-lease-live"  # then the live runs, in the lease's own round trip
ALSO_MARK = "@@harness-lease-also"  # then what the caller's ``also`` command printed
READ_PHONE_LEASE = f'echo "{RECORD_MARK}$(date +%s)"; cat {PHONE_LEASE} 2>/dev/null; true'


def read_phone_lease(device: Device) -> PhoneLease | None:
    return parse_phone_lease(device.run(READ_PHONE_LEASE, timeout=30).out)


def write_phone_lease_command(holder: ProcessHolder, purpose: str, ttl: int) -> str:
    """Write the record atomically, the heartbeat taken from the phone's clock."""
    body = "".join(f"{k}={' '.join(v.split())}\n" for k, v in (
        ("host", holder.host), ("pid", str(holder.pid)), ("start", holder.start),
        ("purpose", purpose), ("ttl", str(ttl))))
    tmp = f"{PHONE_LEASE}.tmp.{holder.pid}"
    return (f"mkdir -p {devshell.quote(PHONE_LEASE.rsplit('/', 1)[0])} && "
            f"{{ printf '%s' {devshell.quote(body)}; echo \"heartbeat=$(date +%s)\"; }} "
            f"> {devshell.quote(tmp)} && mv {devshell.quote(tmp)} {PHONE_LEASE}")


def refresh_phone_lease_command(holder: ProcessHolder, purpose: str, ttl: int) -> str:
    """The heartbeat: rewrite the record only while it is still ours. A record that is gone
    (released, while a slow heartbeat was still on its way) stays gone, and one that another
    host took after ours expired is not taken back."""
    host = " ".join(holder.host.split())  # as the record is written
    return (f"grep -qx {devshell.quote(f'pid={holder.pid}')} {PHONE_LEASE} 2>/dev/null && "
            f"grep -qx {devshell.quote(f'host={host}')} {PHONE_LEASE} && "
            f"{{ {write_phone_lease_command(holder, purpose, ttl)}; }}; true")


def remove_phone_lease_command(holder: ProcessHolder) -> str:
    """Remove the record only if it is still ours."""
    return (f"grep -qx {devshell.quote(f'pid={holder.pid}')} {PHONE_LEASE} 2>/dev/null && "
            f"grep -qx {devshell.quote(f'host={holder.host}')} {PHONE_LEASE} && "
            f"rm -f {PHONE_LEASE}; true")


TOOK_MARK = "@@harness-lease-took"  # the phone wrote our record: the read-back follows


def take_phone_lease_command(holder: ProcessHolder, purpose: str, ttl: int,
                             force: bool = False, also: str = "") -> str:
    """One shell: print the record found (after the phone's clock, as ``READ_PHONE_LEASE``);
    then, when it is absent, unreadable, ours or expired by the phone's clock (or ``force``:
    the host found its holder dead), write ours atomically, print :data:`TOOK_MARK`, read it
    back and list the phone's live runs (:data:`LIVE_MARK`). A record of a live holder is
    left alone (nothing after the record is printed).

    The test is ``parse_phone_lease`` + ``PhoneLease.expired`` + ``_same`` done by the
    phone's shell: a pid or heartbeat that is not digits is no record; ttl defaults to
    :data:`PHONE_LEASE_TTL_S`. Whether a holder of this host is dead only the host knows:
    it asks again with ``force``.

    ``also``: a read-only command of the caller's, run last once the record is ours, its
    output after :data:`ALSO_MARK` (one round trip fewer for what the caller reads next).
    """
    q = devshell.quote
    host = " ".join(holder.host.split())  # as the record is written
    decide = "_lw=1" if force else (
        "_lp=; _lh=; _lb=; _lt=; _lw=0; "
        f"if [ -f {PHONE_LEASE} ]; then while IFS= read -r _ll || [ -n \"$_ll\" ]; do "
        "case $_ll in *=*) _lv=${_ll#*=}; case ${_ll%%=*} in pid) _lp=$_lv;; "
        "host) _lh=$_lv;; heartbeat) _lb=$_lv;; ttl) _lt=$_lv;; esac;; esac; "
        f"done < {PHONE_LEASE}; else _lw=1; fi; "
        "case $_lp in ''|*[!0-9]*) _lw=1;; esac; case $_lb in ''|*[!0-9]*) _lw=1;; esac; "
        f"case $_lt in ''|*[!0-9]*) _lt={PHONE_LEASE_TTL_S};; esac; "
        f"[ \"$_lp\" = {holder.pid} ] && [ \"$_lh\" = {q(host)} ] && _lw=1; "
        "[ $_lw = 1 ] || [ $((_ln - _lb)) -ge $_lt ] && _lw=1")
    return (f'_ln=$(date +%s); echo "{RECORD_MARK}$_ln"; cat {PHONE_LEASE} 2>/dev/null; echo; '
            f"{decide}; "
            f"if [ $_lw = 1 ]; then {write_phone_lease_command(holder, purpose, ttl)} && "
            f"echo {TOOK_MARK} && {{ {READ_PHONE_LEASE}; }} && "
            f"{{ echo {LIVE_MARK}; {live_runs_command()}; }}"
            + (f"; echo {ALSO_MARK}; {{ {also}; }}" if also else "") + "; fi")


def _same(a: ProcessHolder, b: ProcessHolder) -> bool:
    return (a.host, a.pid) == (b.host, b.pid)


# ---- the lease ------------------------------------------------------------------------------

class Lease:
    """``with Lease(serial, purpose, device=device):`` holds the phone for the block.

    Without ``device`` only the host's lock is taken (no phone record, no orphan check).
    ``on_warning`` hears about orphans killed and stale records taken over.
    """

    def __init__(self, serial: str, purpose: str = "", wait_s: float = 0.0,
                 device: Device | None = None, keep_orphans: bool = False,
                 on_warning: Callable[[str], None] | None = None,
                 ttl_s: int = PHONE_LEASE_TTL_S, also: str = "") -> None:
        self.serial = serial
        self.purpose = purpose or " ".join(Path(a).name for a in sys.argv[:3])
        self.wait_s = wait_s
        self.device = device
        self.keep_orphans = keep_orphans
        self.on_warning = on_warning or (lambda text: None)
        self.ttl_s = ttl_s
        self.also = also  # a read-only command for the phone lease's round trip
        self.also_out = ""  # what it printed (empty: not run, or no phone record)
        self.orphans_killed: list[LiveRun] = []
        self._fd: int | None = None
        self._me = ProcessHolder.me()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._live: list[LiveRun] = []  # the phone's live runs, listed as the lease is taken
        self._on_phone = False  # our record may be on the phone: the release removes it

    def acquire(self) -> Lease:
        self._lock_host()
        try:
            if self.device is not None:
                self._lock_phone(self.device)
                self._handle_orphans(self.device)
        except BaseException:
            self.release()
            raise
        return self

    def _lock_host(self) -> None:
        fd = _open_lock(self.serial)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = holder_of(self.serial)
                    who = holder.describe() if holder else "another job"
                    raise LeaseBusy(f"in use by {who}", serial=self.serial,
                                    hint="wait with --lease-wait SECONDS, or pick another "
                                         "phone") from None
                cancel.sleep(LEASE_POLL_S)
        self._fd = fd
        info = Holder(os.getpid(), socket.gethostname(), self.purpose, time.time())
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info.__dict__).encode(), 0)

    def _lock_phone(self, device: Device) -> None:
        # Read, written and read back in one shell (one round trip per command): the phone
        # writes our record only over none, ours or an expired one; two hosts writing at
        # once: the last one wins, and the other sees it in its read-back. The phone's live
        # runs are listed in the same shell (for _handle_orphans): read-only, so harmless
        # when the lease turns out not to be ours.
        deadline = time.monotonic() + self.wait_s
        force = False
        while True:
            self._on_phone = True  # from before the command: an interrupt may cut its answer
            out = device.run(take_phone_lease_command(self._me, self.purpose, self.ttl_s,
                                                      force=force, also=self.also),
                             check=True, timeout=60).out
            before, took, after = out.partition(f"\n{TOOK_MARK}\n")
            found = parse_phone_lease(before)
            if took:
                break
            if found is None:  # the phone saw no record but wrote nothing: not the protocol
                raise LeaseBusy("the lease record on the phone could not be written",
                                serial=self.serial)
            if found.stale():  # a holder of this host that is dead: only we know
                force = True
                continue
            if time.monotonic() >= deadline:
                raise LeaseBusy(f"in use by {found.describe()}", serial=self.serial,
                                hint="another host holds it through a shared adb server; "
                                     "wait with --lease-wait SECONDS, or pick another phone")
            cancel.sleep(max(LEASE_POLL_S, 1.0))
        record, _, live = after.partition(f"{LIVE_MARK}\n")
        if self.also:  # the last mark: a holder file listed among the live runs is not ours
            live, _, self.also_out = live.rpartition(f"{ALSO_MARK}\n")
        mine = parse_phone_lease(record)
        self._live = parse_live_runs(live)
        if mine is None or not _same(mine.holder, self._me):
            who = mine.describe() if mine else "another host"
            raise LeaseBusy(f"in use by {who}", serial=self.serial)
        if found is not None and not _same(found.holder, self._me):
            self.on_warning(f"{self.serial}: took over a stale lease record of "
                            f"{found.describe()}")
        beat = threading.Thread(target=self._heartbeat, args=(device,),
                                name=f"lease-{self.serial}", daemon=True)
        beat.start()
        self._beat = beat  # only once started (the release joins it)

    def _heartbeat(self, device: Device) -> None:
        command = refresh_phone_lease_command(self._me, self.purpose, self.ttl_s)
        while not self._stop.wait(self.ttl_s / 4):
            with contextlib.suppress(Exception):  # the phone may be away for a moment
                device.run(command, timeout=30)

    def _handle_orphans(self, device: Device) -> None:
        # We hold the phone now: a run of another host's harness that still goes is one
        # whose lease lapsed, so its holder is gone too.
        orphans = orphans_among(self._live, remote_dead=lambda holder: True)
        if not orphans:
            return
        names = "; ".join(o.describe() for o in orphans)
        if self.keep_orphans:
            raise OrphansFound(f"{len(orphans)} run(s) of a dead harness still going on the "
                               f"phone: {names}", serial=self.serial,
                               hint="run without --keep-orphans to kill them")
        kill_orphans(device, orphans)
        self.orphans_killed = list(orphans)
        self.on_warning(f"{self.serial}: killed {len(orphans)} orphaned run(s) of a dead "
                        f"harness: {names}")

    def release(self) -> None:
        """Stop the heartbeat, remove our record from the phone, unlock the host's file.

        Re-entrant: an exception (a KeyboardInterrupt raised in this thread) that cuts it
        short leaves what is not done yet to a second call, which does that part again
        (the removal removes a record only while it is ours)."""
        self._stop.set()  # also a heartbeat started just before an interrupt hit _lock_phone
        if self._beat is not None:
            # Longer than the heartbeat's own command may take (timeout=30), so that it
            # cannot land after the removal below (and it only rewrites a record still ours).
            self._beat.join(timeout=35)
            self._beat = None
        if self._on_phone and self.device is not None:
            with contextlib.suppress(Exception):
                self.device.run(remove_phone_lease_command(self._me), timeout=15)
            self._on_phone = False
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
