"""Leases: a phone is used by one harness job at a time, across processes on this host.

A lease is an exclusive ``flock`` on ``$HARNESS_HOME/leases/<serial>.lock``; the kernel
releases it when the holder exits or dies, so a lease can never outlive its holder. Who holds
it (PID, command, since) is written beside it for messages and ``harness devices``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from harness.device.errors import DeviceError
from harness.home import harness_home, safe_name

LEASE_POLL_S = 0.2


class LeaseBusy(DeviceError):
    """The phone is leased by another harness job."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    since: float

    def describe(self) -> str:
        age = time.time() - self.since
        return f"pid {self.pid} ({self.command}) for {age:.0f}s"


def lease_dir() -> Path:
    path = harness_home() / "leases"
    path.mkdir(parents=True, exist_ok=True)
    return path


def holder_of(serial: str) -> Holder | None:
    """The current holder, or None if the phone is free."""
    lock = lease_dir() / f"{safe_name(serial)}.lock"
    if not lock.exists():
        return None
    with lock.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            fcntl.flock(fh, fcntl.LOCK_UN)
            return None
    try:
        data = json.loads((lease_dir() / f"{safe_name(serial)}.json").read_text())
        return Holder(**data)
    except (OSError, ValueError, TypeError):
        return Holder(pid=0, host="?", command="unknown", since=time.time())


class Lease:
    """``with Lease(serial, purpose):`` holds the phone for the block."""

    def __init__(self, serial: str, purpose: str = "", wait_s: float = 0.0) -> None:
        self.serial = serial
        self.purpose = purpose or " ".join(Path(a).name for a in sys.argv[:3])
        self.wait_s = wait_s
        self._fh: IO[str] | None = None

    def acquire(self) -> Lease:
        path = lease_dir() / f"{safe_name(self.serial)}.lock"
        fh = path.open("a+")
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    holder = holder_of(self.serial)
                    who = holder.describe() if holder else "another job"
                    raise LeaseBusy(f"in use by {who}", serial=self.serial,
                                    hint="wait with --lease-wait SECONDS, or pick another "
                                         "phone") from None
                time.sleep(LEASE_POLL_S)
        self._fh = fh
        info = Holder(os.getpid(), socket.gethostname(), self.purpose, time.time())
        meta = lease_dir() / f"{safe_name(self.serial)}.json"
        tmp = meta.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info.__dict__))
        tmp.replace(meta)
        return self

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                (lease_dir() / f"{safe_name(self.serial)}.json").unlink()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
