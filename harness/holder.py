"""Who holds something: a process identity that survives PID reuse and host reboots.

Leases, background runs on phones and ``running`` rows in the store record the harness
process that owns them as a :class:`Holder`: host name, PID and the PID's start identity
(``<boot id>:<start time in clock ticks>``, from ``/proc/sys/kernel/random/boot_id`` and field
22 of ``/proc/<pid>/stat``). On the same host a holder is dead when its PID is gone or now
belongs to a process that started at another time (PID reuse, or a reboot: a new boot id).
A holder on another host cannot be checked from here; callers decide with what they have
(e.g. the expiry of a lease record).
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


def pid_start(pid: int) -> str | None:
    """``<boot id>:<start ticks>`` of a live PID, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    # After "pid (comm)": field 3 is fields[0]; starttime is field 22, so fields[19].
    if len(fields) < 20 or fields[0] == "Z":
        return None
    return f"{_boot_id()}:{fields[19]}"


@dataclass(frozen=True)
class Holder:
    """A process that holds a lease or started a run."""

    host: str
    pid: int
    start: str  # pid_start() when recorded; "" if unknown

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), pid_start(os.getpid()) or "")

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    def dead_here(self) -> bool:
        """True when the holder ran on this host and that process is gone (or was reused).

        False for a live holder and for holders on other hosts (unknowable from here).
        """
        if not self.local:
            return False
        now = pid_start(self.pid)
        if now is None:
            return True
        return bool(self.start) and now != self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Holder:
        return cls(str(data.get("host", "?")), int(data.get("pid", 0) or 0),
                   str(data.get("start", "") or ""))

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


__all__ = ["Holder", "pid_start"]
