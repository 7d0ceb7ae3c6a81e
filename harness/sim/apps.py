"""Background apps of a virtual phone, and what lmkd and the kernel's OOM killer do.

On Android, ActivityManager registers every app process with lmkd (with its
``oom_score_adj``: cached apps 900..999, a B-list service 800, the previous app 700; AOSP
frameworks/base ``ProcessList.java``). lmkd kills only processes registered that way, highest
``oom_score_adj`` first and, within one level, the heaviest (AOSP system/memory/lmkd
``lmkd.cpp``, ``find_and_kill_process``/``proc_get_heaviest``). A native binary started from
``adb shell`` is not registered: when killing every app does not make room, the kernel's OOM
killer SIGKILLs it (``mm/oom_kill.c``, ``__oom_kill_process``) and writes the reason only to
the kernel log.

The apps are records in ``apps.json`` of the control directory (fake pids; no host process).
Their resident memory is part of the profile's ``reserved_kb`` (Android's use at idle); what
lmkd frees by killing them comes back to MemAvailable. A killed app is started again by the
"user" once no simulated binary has run for :data:`APP_RESTART_S` simulated seconds, so every
OOM test on a long-lived farm sees apps to kill.

Memory model (chosen so that the calibration in :mod:`harness.sim.speed` still holds):

- lmkd kills an app whenever a binary's request would leave MemAvailable under
  :data:`LMKD_MINFREE_KB` (its minfree level for cached apps);
- the kernel's OOM killer ends the binary when even with every app killed the request would
  leave MemAvailable under :data:`OOM_FLOOR_KB`: MemAvailable counts file pages that the
  running code keeps faulting back in, so a real phone thrashes and OOMs well before it
  reaches zero.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

APPS_FILE = "apps.json"
LMKD_MINFREE_KB = 1_000_000  # chosen: lmkd's minfree level for cached apps on a big phone
OOM_FLOOR_KB = 800_000  # chosen: MemAvailable when the kernel gives up (thrashing)
APP_RESTART_S = 20.0  # simulated seconds after the last binary before apps come back
FIRST_APP_PID = 4211

# (process name, uid, oom_score_adj, rss kB, swap kB): a phone after an afternoon of use.
DEFAULT_APPS: tuple[tuple[str, int, int, int, int], ...] = (
    ("com.android.chrome", 10145, 935, 368_412, 41_220),
    ("com.google.android.youtube", 10168, 925, 254_880, 28_764),
    ("com.google.android.apps.maps", 10172, 915, 172_336, 19_508),
    ("com.google.android.apps.photos", 10181, 905, 98_452, 11_036),
    ("com.android.vending", 10098, 800, 64_120, 7_312),
)


@dataclass(frozen=True)
class App:
    """One app process that ActivityManager registered with lmkd."""

    name: str
    pid: int
    uid: int
    oom_score_adj: int
    rss_kb: int
    swap_kb: int
    alive: bool = True
    died_wall: float | None = None


@dataclass(frozen=True)
class Apps:
    apps: tuple[App, ...]
    next_pid: int
    last_binary_wall: float | None = None  # when a simulated binary last held memory

    @property
    def freed_kb(self) -> int:
        """What lmkd gave back to MemAvailable by killing apps."""
        return sum(a.rss_kb for a in self.apps if not a.alive)

    def victim(self) -> App | None:
        """lmkd's next victim: the highest oom_score_adj, then the heaviest."""
        alive = [a for a in self.apps if a.alive]
        return max(alive, key=lambda a: (a.oom_score_adj, a.rss_kb)) if alive else None

    def kill(self, app: App, now_wall: float) -> Apps:
        dead = replace(app, alive=False, died_wall=now_wall)
        return replace(self, apps=tuple(dead if a.pid == app.pid else a for a in self.apps))


def initial() -> Apps:
    apps = tuple(App(name, FIRST_APP_PID + 97 * i, uid, adj, rss, swap)
                 for i, (name, uid, adj, rss, swap) in enumerate(DEFAULT_APPS))
    return Apps(apps, FIRST_APP_PID + 97 * len(apps))


def load(ctl: Path) -> Apps:
    try:
        raw = json.loads((ctl / APPS_FILE).read_text())
    except (OSError, ValueError):
        return initial()
    return Apps(tuple(App(**a) for a in raw["apps"]), int(raw["next_pid"]),
                raw.get("last_binary_wall"))


def save(ctl: Path, apps: Apps) -> None:
    path = ctl / APPS_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"apps": [asdict(a) for a in apps.apps],
                               "next_pid": apps.next_pid,
                               "last_binary_wall": apps.last_binary_wall}, indent=1))
    tmp.replace(path)


def restart_due(apps: Apps, now_wall: float, time_scale: float) -> tuple[Apps, list[App]]:
    """Start the killed apps again once the phone has been free of binaries for a while."""
    last = apps.last_binary_wall
    if last is None or now_wall - last < APP_RESTART_S * time_scale:
        return apps, []
    started, out, pid = [], [], apps.next_pid
    for app in apps.apps:
        if app.alive:
            out.append(app)
            continue
        pid += 97
        fresh = replace(app, pid=pid, alive=True, died_wall=None)
        out.append(fresh)
        started.append(fresh)
    return replace(apps, apps=tuple(out), next_pid=pid), started


def kill_line(app: App, reason: str) -> str:
    """lmkd's kill line (AOSP system/memory/lmkd/lmkd.cpp, kill_one_process: ``"Kill '%s'
    (%d), uid %d, oom_score_adj %d to free %" PRId64 "kB rss, %" PRId64 "kB swap; reason:
    %s"``)."""
    return (f"Kill '{app.name}' ({app.pid}), uid {app.uid}, oom_score_adj {app.oom_score_adj} "
            f"to free {app.rss_kb}kB rss, {app.swap_kb}kB swap; reason: {reason}")


def kill_reason(available_after_kb: int) -> str:
    """lmkd.cpp mp_event_psi, LOW_MEM: ``"%s watermark is breached"`` (min or low)."""
    return f"{'min' if available_after_kb < OOM_FLOOR_KB else 'low'} watermark is breached"


def start_line(app: App) -> str:
    """ActivityManager's line when it starts an app process (ProcessList.java:
    ``"Start proc " + pid + ":" + processName + "/" + uid-name + " for " + hosting``)."""
    return f"Start proc {app.pid}:{app.name}/u0a{app.uid - 10000} for service {{{app.name}}}"


def oom_kill_lines(comm: str, pid: int, rss_kb: int, vm_kb: int, uid: int) -> list[str]:
    """The kernel's lines when its OOM killer ends ``pid`` (mm/oom_kill.c): dump_header's
    ``"%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%hd"``,
    dump_oom_summary's ``oom-kill:constraint=...``, __oom_kill_process's ``"%s: Killed process
    %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB, UID:%u
    pgtables:%lukB oom_score_adj:%hd"`` and the oom_reaper's line. ``comm`` is the kernel's
    task name: at most 15 characters (TASK_COMM_LEN 16)."""
    comm = comm[:15]
    anon = rss_kb * 97 // 100
    return [
        f"{comm} invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|"
        "__GFP_ZERO), order=0, oom_score_adj=0",
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,"
        f"global_oom,task_memcg=/,task={comm},pid={pid},uid={uid}",
        f"Out of memory: Killed process {pid} ({comm}) total-vm:{vm_kb}kB, "
        f"anon-rss:{anon}kB, file-rss:{rss_kb - anon}kB, shmem-rss:0kB, UID:{uid} "
        f"pgtables:{rss_kb // 500}kB oom_score_adj:0",
        f"oom_reaper: reaped process {pid} ({comm}), now anon-rss:0kB, file-rss:0kB, "
        "shmem-rss:0kB",
    ]
