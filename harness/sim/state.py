"""The runtime state of one virtual phone, kept in its control directory.

Several processes share it: the phone daemon ticks it (cooling, battery, fake kernel files)
and every simulated binary registers its memory footprint and adds heat. Each change takes an
exclusive ``flock`` on ``state.lock``; JSON files are replaced atomically. ``meminfo`` and the
``procs/<pid>.status`` files are the exception: they are bind-mounted over ``/proc/meminfo``
and ``/proc/<pid>/status`` in the phone's namespace, so they are rewritten in place and keep
their inode.

Control directory layout (``ctl``)::

    profile.json                 the profile, serial and time scale (written once at boot)
    thermal.json                 SoC and battery temperature, battery level, cpufreq residency
    state.lock                   flock(2) target guarding every read-modify-write
    meminfo                      /proc/meminfo of the phone (rewritten in place)
    logcat.txt                   the log buffer, one threadtime line per entry
    dumpsys_battery.txt          what `dumpsys battery` prints
    dumpsys_thermalservice.txt   what `dumpsys thermalservice` prints
    procs/<pid>.json             a running simulated binary's footprint (host pid)
    procs/<pid>.status           its /proc/<pid>/status (rewritten in place)
    apps.json                    background apps registered with lmkd (:mod:`harness.sim.apps`)
    kmsg.txt                     the kernel log as ``dmesg`` prints it (readable as root only)

Time: ``time_scale`` converts simulated seconds into wall seconds (wall = simulated x scale).
All physical constants (heating, cooling, compute) are in simulated seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.device.procs import pid_alive
from harness.sim import apps as bg
from harness.sim import devtools, sensors
from harness.sim.profiles import PhoneProfile

PROFILE_FILE = "profile.json"
THERMAL_FILE = "thermal.json"
LOCK_FILE = "state.lock"
MEMINFO_FILE = "meminfo"
LOGCAT_FILE = "logcat.txt"
KMSG_FILE = "kmsg.txt"
BATTERY_DUMP_FILE = "dumpsys_battery.txt"
THERMAL_DUMP_FILE = "dumpsys_thermalservice.txt"
PROCS_DIR = "procs"

USB_CHARGE_W = 2.5  # what a USB port feeds a phone on the bench
BATTERY_VOLTAGE_V = 3.87  # nominal Li-ion cell voltage, to turn mAh into joules
CLOCK_TICKS_PER_S = 100  # USER_HZ: units of cpufreq time_in_state
THROTTLE_CLEAR_HYSTERESIS_C = 2.0  # the thermal engine clears its alarm this far below
MAX_LOAD_FRACTION = 1.2  # power above full_load_w heats a little beyond max_c
SHELL_UID = 2000
VM_NOT_RESIDENT_KB = 1_350_000  # mapped but not resident: libraries, reserved heap
LMKD_PID = 587  # fake pids of the system daemons that write to logcat
THERMAL_ENGINE_PID = 1203
SYSTEM_SERVER_PID = 1456
ADBD_PID = 612
BOOT_LOG_SPACING_S = 0.137  # gap between the fake boot log lines


def write_in_place(path: Path, text: str) -> None:
    """Overwrite ``path`` keeping its inode (it may be bind-mounted over a /proc file)."""
    data = text.encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    tmp.replace(path)


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@dataclass
class ThermalState:
    soc_c: float
    battery_c: float
    battery_level: float
    throttled: bool = False  # the thermal engine's alarm (for its logcat lines)
    charging: bool = True
    last_tick_wall: float | None = None
    time_in_state: list[list[float]] = field(default_factory=list)  # clock ticks per freq

    @classmethod
    def initial(cls, profile: PhoneProfile) -> ThermalState:
        ambient = profile.thermal.ambient_c
        tis = [[0.0] * len(c.frequencies_khz()) for c in profile.cpu_clusters]
        return cls(ambient, ambient, float(profile.battery_level), time_in_state=tis)


@dataclass(frozen=True)
class Temperatures:
    cpu_c: float
    gpu_c: float
    skin_c: float
    battery_c: float


@dataclass(frozen=True)
class ProcInfo:
    """A running simulated binary as the phone sees it."""

    pid: int
    name: str
    rss_kb: int
    peak_kb: int
    power_w: float
    threads: int = 16


@dataclass(frozen=True)
class MemoryGrant:
    granted: bool
    available_kb: int  # what was available to the process, its own rss included
    rss_kb: int = 0  # what the process holds now (refused: as much as the kernel gave it)
    killed: tuple[bg.App, ...] = ()  # apps lmkd killed to make room


def throttle_for(profile: PhoneProfile, soc_c: float) -> float:
    """Time multiplier at SoC temperature ``soc_c``: 1.0 below throttle_c, smooth above."""
    t = profile.thermal
    x = min(max((soc_c - t.throttle_c) / (t.max_c - t.throttle_c), 0.0), 1.0)
    return 1.0 + (t.max_slowdown - 1.0) * x * x * (3.0 - 2.0 * x)


def temperatures_for(profile: PhoneProfile, th: ThermalState) -> Temperatures:
    t = profile.thermal
    skin = t.ambient_c + (th.soc_c - t.ambient_c) * t.skin_fraction
    return Temperatures(cpu_c=th.soc_c, gpu_c=th.soc_c - 1.5, skin_c=skin,
                        battery_c=th.battery_c)


def meminfo_text(profile: PhoneProfile, used_kb: int) -> str:
    """/proc/meminfo of a phone whose simulated binaries hold ``used_kb`` (fixed width)."""
    total = profile.memtotal_kb
    available = max(total - profile.reserved_kb - used_kb, 0)
    free = available * 15 // 100
    cached = available * 70 // 100
    buffers = 6120
    anon = min(profile.reserved_kb * 45 // 100 + used_kb, total)
    swap_free = profile.swap_kb * 88 // 100
    rows = [
        ("MemTotal", total), ("MemFree", free), ("MemAvailable", available),
        ("Buffers", buffers), ("Cached", cached), ("SwapCached", 41236),
        ("Active", anon * 60 // 100 + cached * 35 // 100),
        ("Inactive", anon * 40 // 100 + cached * 65 // 100),
        ("Active(anon)", anon * 60 // 100), ("Inactive(anon)", anon * 40 // 100),
        ("Active(file)", cached * 35 // 100), ("Inactive(file)", cached * 65 // 100),
        ("Unevictable", 238960), ("Mlocked", 238948),
        ("SwapTotal", profile.swap_kb), ("SwapFree", swap_free),
        ("Dirty", 188), ("Writeback", 0), ("AnonPages", anon),
        ("Mapped", cached * 30 // 100), ("Shmem", 53484), ("KReclaimable", 482160),
        ("Slab", 1017024), ("SReclaimable", 347620), ("SUnreclaim", 669404),
        ("KernelStack", 104528), ("ShadowCallStack", 26168), ("PageTables", 194544),
        ("SecPageTables", 0), ("NFS_Unstable", 0), ("Bounce", 0), ("WritebackTmp", 0),
        ("CommitLimit", total // 2 + profile.swap_kb), ("Committed_AS", 99999999),
        ("VmallocTotal", 99999999), ("VmallocUsed", 284312), ("VmallocChunk", 0),
        ("Percpu", 17024), ("CmaTotal", 204800), ("CmaFree", 19532),
    ]
    # The kernel pads the label to 16 columns and the number to 8: a stable file size.
    return "".join(f"{label + ':':<16}{value:>8} kB\n" for label, value in rows)


def status_text(info: ProcInfo, state_letter: str = "R (running)") -> str:
    """/proc/<pid>/status of a simulated binary (numbers fixed width: a stable size)."""
    vm_size = info.peak_kb + VM_NOT_RESIDENT_KB
    rows = [
        ("Name", info.name[:15]), ("Umask", "0077"), ("State", state_letter),
        ("Tgid", str(info.pid)), ("Ngid", "0"), ("Pid", str(info.pid)), ("PPid", "1"),
        ("TracerPid", "0"), ("Uid", "\t".join([str(SHELL_UID)] * 4)),
        ("Gid", "\t".join([str(SHELL_UID)] * 4)), ("FDSize", "128"),
        ("Groups", "1004 1007 1011 1015 1028 1078 1079 3001 3002 3003 3006 3009 3011 "),
        ("VmPeak", f"{vm_size + 65536:>8} kB"), ("VmSize", f"{vm_size:>8} kB"),
        ("VmLck", f"{0:>8} kB"), ("VmPin", f"{0:>8} kB"),
        ("VmHWM", f"{info.peak_kb:>8} kB"), ("VmRSS", f"{info.rss_kb:>8} kB"),
        ("RssAnon", f"{info.rss_kb * 97 // 100:>8} kB"),
        ("RssFile", f"{info.rss_kb - info.rss_kb * 97 // 100:>8} kB"),
        ("RssShmem", f"{0:>8} kB"), ("VmData", f"{info.peak_kb:>8} kB"),
        ("VmStk", f"{8192:>8} kB"), ("VmExe", f"{2104:>8} kB"), ("VmLib", f"{61820:>8} kB"),
        ("VmPTE", f"{info.peak_kb // 500:>8} kB"), ("VmSwap", f"{0:>8} kB"),
        ("CoreDumping", "0"), ("THP_enabled", "0"), ("Threads", f"{info.threads:<3}"),
        ("SigQ", "0/51829"), ("SigPnd", "0000000000000000"), ("ShdPnd", "0000000000000000"),
        ("SigBlk", "0000000000000000"), ("SigIgn", "0000000000001000"),
        ("SigCgt", "0000000000000000"), ("CapInh", "0000000000000000"),
        ("CapPrm", "0000000000000000"), ("CapEff", "0000000000000000"),
        ("CapBnd", "00000000000000c0"), ("CapAmb", "0000000000000000"),
        ("NoNewPrivs", "0"), ("Seccomp", "0"), ("Speculation_Store_Bypass", "thread vulnerable"),
        ("Cpus_allowed", "ff"), ("Cpus_allowed_list", "0-7"),
        ("voluntary_ctxt_switches", "1"), ("nonvoluntary_ctxt_switches", "1"),
    ]
    return "".join(f"{k}:\t{v}\n" for k, v in rows)


def logcat_line(tag: str, priority: str, msg: str, pid: int, tid: int | None = None,
                now: float | None = None) -> str:
    """One log entry in ``logcat -v threadtime`` format."""
    stamp = time.time() if now is None else now
    local = time.localtime(stamp)
    millis = int((stamp % 1) * 1000)
    when = time.strftime("%m-%d %H:%M:%S", local) + f".{millis:03d}"
    return f"{when} {pid:5d} {tid if tid is not None else pid:5d} {priority} {tag:<8}: {msg}\n"


READY_FILE = "ready.json"  # the daemon's port, pid and refresh socket (harness.sim.phone)
REFRESH_TIMEOUT_S = 5.0


def refresh_socket_name(daemon_pid: int, port: int) -> str:
    """The abstract unix socket on which a phone's daemon refreshes its files on request.
    Abstract (Linux, unix(7)): it needs no path the shell user may write, and the phone's
    mount namespace shares the host's network namespace, where abstract names live."""
    return f"harness-sim-refresh-{daemon_pid}-{port}"


class PhoneState:
    """One phone's state, shared by its daemon and its simulated binaries."""

    def __init__(self, ctl: Path) -> None:
        self.ctl = ctl
        self._meta: dict[str, Any] | None = None
        self._profile: PhoneProfile | None = None
        self._render_cache: dict[str, str] = {}
        self._refresh_name: str | None = None

    # ---- identity -------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = json.loads((self.ctl / PROFILE_FILE).read_text())
        return self._meta

    @property
    def profile(self) -> PhoneProfile:
        if self._profile is None:
            self._profile = PhoneProfile.from_dict(self.meta["profile"],
                                                   str(self.ctl / PROFILE_FILE))
        return self._profile

    @property
    def serial(self) -> str:
        return str(self.meta["serial"])

    @property
    def time_scale(self) -> float:
        return float(self.meta["time_scale"])

    # ---- plumbing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.ctl / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load_thermal(self) -> ThermalState:
        raw = json.loads((self.ctl / THERMAL_FILE).read_text())
        return ThermalState(**raw)

    def _save_thermal(self, th: ThermalState) -> None:
        _write_json(self.ctl / THERMAL_FILE, asdict(th))

    @property
    def procs_dir(self) -> Path:
        return self.ctl / PROCS_DIR

    # ---- processes ------------------------------------------------------------------------
    def _read_procs(self, prune: bool = False) -> list[ProcInfo]:
        out = []
        for path in sorted(self.procs_dir.glob("*.json")):
            try:
                info = ProcInfo(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            if pid_alive(info.pid):
                out.append(info)
            elif prune:
                path.unlink(missing_ok=True)
                (self.procs_dir / f"{info.pid}.status").unlink(missing_ok=True)
        return out

    def processes(self) -> list[ProcInfo]:
        """The simulated binaries running now."""
        return self._read_procs()

    def _write_proc(self, info: ProcInfo) -> None:
        _write_json(self.procs_dir / f"{info.pid}.json", asdict(info))
        write_in_place(self.procs_dir / f"{info.pid}.status", status_text(info))

    def status_path(self, pid: int) -> Path:
        return self.procs_dir / f"{pid}.status"

    def register_process(self, pid: int, name: str, rss_kb: int, peak_kb: int,
                         power_w: float, threads: int = 16) -> None:
        with self._locked():
            self._write_proc(ProcInfo(pid, name, rss_kb, max(peak_kb, rss_kb), power_w,
                                      threads))
        self.render_meminfo()

    def update_process(self, pid: int, *, rss_kb: int | None = None,
                       peak_kb: int | None = None, power_w: float | None = None,
                       threads: int | None = None) -> None:
        with self._locked():
            path = self.procs_dir / f"{pid}.json"
            info = ProcInfo(**json.loads(path.read_text()))
            rss = info.rss_kb if rss_kb is None else rss_kb
            peak = max(info.peak_kb, rss, peak_kb or 0)
            self._write_proc(ProcInfo(pid, info.name, rss, peak,
                                      info.power_w if power_w is None else power_w,
                                      info.threads if threads is None else threads))
        self.render_meminfo()

    def unregister_process(self, pid: int) -> None:
        with self._locked():
            (self.procs_dir / f"{pid}.json").unlink(missing_ok=True)
            (self.procs_dir / f"{pid}.status").unlink(missing_ok=True)
        self.render_meminfo()

    def available_kb(self, exclude_pid: int | None = None) -> int:
        """MemAvailable: MemTotal - Android's own use (apps included) + what lmkd freed by
        killing apps - every running binary's rss."""
        used = sum(p.rss_kb for p in self._read_procs() if p.pid != exclude_pid)
        return (self.profile.memtotal_kb - self.profile.reserved_kb
                + bg.load(self.ctl).freed_kb - used)

    def request_memory(self, pid: int, name: str, rss_kb: int, power_w: float) -> MemoryGrant:
        """Grow (or shrink) process ``pid`` to ``rss_kb``, atomically. When the request would
        leave MemAvailable under lmkd's minfree level, lmkd kills apps first (logcat); when
        even then it does not fit, it is refused and the process grows to what the kernel
        could give it before its OOM killer acts (:mod:`harness.sim.apps`)."""
        with self._locked():
            now = time.time()
            apps = bg.load(self.ctl)
            available = self.available_kb(exclude_pid=pid)
            killed: list[bg.App] = []
            while rss_kb > available - bg.LMKD_MINFREE_KB and (victim := apps.victim()):
                apps = apps.kill(victim, now)
                available += victim.rss_kb
                killed.append(victim)
                self.logcat_append("lowmemorykiller", "I", bg.kill_line(
                    victim, bg.kill_reason(available - rss_kb)), LMKD_PID)
            bg.save(self.ctl, replace(apps, last_binary_wall=now))
            room = available - bg.OOM_FLOOR_KB
            granted = rss_kb <= room
            path = self.procs_dir / f"{pid}.json"
            old = ProcInfo(**json.loads(path.read_text())) if path.exists() else None
            held = rss_kb if granted else max(room, old.rss_kb if old else 0)
            if old is not None:
                info = ProcInfo(pid, name, held, max(old.peak_kb, held), power_w, old.threads)
            else:
                info = ProcInfo(pid, name, held, held, power_w)
            self._write_proc(info)
        self.render_meminfo()
        return MemoryGrant(granted, available, held, tuple(killed))

    def render_meminfo(self, procs: list[ProcInfo] | None = None) -> None:
        used = sum(p.rss_kb for p in (self._read_procs() if procs is None else procs))
        used -= bg.load(self.ctl).freed_kb
        write_in_place(self.ctl / MEMINFO_FILE, meminfo_text(self.profile, used))

    # ---- heat -----------------------------------------------------------------------------
    def _relax_battery(self, th: ThermalState, sim_seconds: float) -> None:
        t = self.profile.thermal
        target = t.ambient_c + (th.soc_c - t.ambient_c) * t.battery_fraction
        th.battery_c = target + (th.battery_c - target) * math.exp(-sim_seconds
                                                                   / t.battery_tau_s)

    def _battery_energy(self, th: ThermalState, joules: float) -> None:
        capacity_j = self.profile.battery_capacity_mah * BATTERY_VOLTAGE_V * 3.6
        th.battery_level = min(max(th.battery_level + 100.0 * joules / capacity_j, 0.0), 100.0)

    def _log_throttle_change(self, th: ThermalState) -> None:
        t = self.profile.thermal
        if not th.throttled and th.soc_c >= t.throttle_c:
            th.throttled = True
            self.logcat_append("thermal-engine", "W", "TM Id 'CPU_CAP' Sensor 'cpu-1-0-0' - "
                               f"alarm raised 1 at {th.soc_c:.1f} degC", THERMAL_ENGINE_PID)
        elif th.throttled and th.soc_c < t.throttle_c - THROTTLE_CLEAR_HYSTERESIS_C:
            th.throttled = False
            self.logcat_append("thermal-engine", "I", "TM Id 'CPU_CAP' Sensor 'cpu-1-0-0' - "
                               f"alarm cleared 1 at {th.soc_c:.1f} degC", THERMAL_ENGINE_PID)

    def add_heat(self, sim_seconds: float, power_w: float) -> None:
        """``sim_seconds`` of work at ``power_w``: the SoC heads towards a power-set target."""
        t = self.profile.thermal
        load = min(max(power_w, 0.0) / t.full_load_w, MAX_LOAD_FRACTION)
        target = t.ambient_c + (t.max_c - t.ambient_c) * load
        with self._locked():
            th = self._load_thermal()
            th.soc_c = target + (th.soc_c - target) * math.exp(-sim_seconds / t.heat_tau_s)
            self._relax_battery(th, sim_seconds)
            self._battery_energy(th, -power_w * sim_seconds)
            self._log_throttle_change(th)
            self._save_thermal(th)

    def request_refresh(self) -> bool:
        """Ask the phone's daemon to rewrite its files now and wait until it has.

        A real phone's ``thermal_zone*/temp`` is a live read (drivers/thermal/thermal_sysfs.c,
        ``temp_show`` -> ``thermal_zone_get_temp``); the virtual phone's zone files are plain
        files that its daemon rewrites. The binary, running as the shell user, may not write
        them itself, so it asks as it ends; a read that follows then sees the change, as on
        a real phone. False when no daemon answers (a state outside a phone)."""
        if self._refresh_name is None:
            try:
                ready = json.loads((self.ctl / READY_FILE).read_text())
                self._refresh_name = str(ready["refresh"])
            except (OSError, ValueError, KeyError, TypeError):
                return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(REFRESH_TIMEOUT_S)
                conn.connect("\0" + self._refresh_name)
                conn.sendall(b"r")
                return conn.recv(1) == b"k"
        except OSError:
            return False

    def cool(self, sim_seconds: float, loaded: bool = False) -> None:
        """Newton cooling towards ambient for ``sim_seconds`` (what tick does)."""
        with self._locked():
            th = self._load_thermal()
            self._cool(th, sim_seconds, loaded)
            self._save_thermal(th)

    def _cool(self, th: ThermalState, sim_seconds: float, loaded: bool) -> None:
        t = self.profile.thermal
        if not loaded:
            # While a binary works, its add_heat already moves the SoC towards the balance of
            # its power and the loss to ambient; cooling here as well would count that time
            # twice, and on a busy host (wall time >> the binary's simulated time) a run would
            # leave the phone no warmer than it started.
            th.soc_c = t.ambient_c + (th.soc_c - t.ambient_c) * math.exp(-sim_seconds
                                                                         / t.cool_tau_s)
        self._relax_battery(th, sim_seconds)
        self._battery_energy(th, USB_CHARGE_W * sim_seconds)
        th.charging = not loaded and th.battery_level < 100.0
        factor = throttle_for(self.profile, th.soc_c)
        for ci, cluster in enumerate(self.profile.cpu_clusters):
            index = devtools.freq_index(cluster, factor) if loaded else 0
            th.time_in_state[ci][index] += sim_seconds * CLOCK_TICKS_PER_S
        self._log_throttle_change(th)

    def throttle_factor(self) -> float:
        with self._locked():
            th = self._load_thermal()
        return throttle_for(self.profile, th.soc_c)

    def temperatures(self) -> Temperatures:
        with self._locked():
            th = self._load_thermal()
        return temperatures_for(self.profile, th)

    def thermal(self) -> ThermalState:
        with self._locked():
            return self._load_thermal()

    def set_temperature(self, celsius: float) -> None:
        """Put the whole phone (SoC and battery) at ``celsius`` at once."""
        with self._locked():
            th = self._load_thermal()
            th.soc_c = th.battery_c = float(celsius)
            # Cooling starts now: the next tick must not apply the time before this moment
            # to the new temperature.
            th.last_tick_wall = time.time()
            self._log_throttle_change(th)
            self._save_thermal(th)

    # ---- logcat ---------------------------------------------------------------------------
    def logcat_append(self, tag: str, priority: str, msg: str, pid: int,
                      tid: int | None = None) -> None:
        line = logcat_line(tag, priority, msg, pid, tid)
        fd = os.open(self.ctl / LOGCAT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def kmsg_append(self, lines: list[str]) -> None:
        """Kernel log lines as toybox ``dmesg`` prints them: ``[%5lld.%06lld] text``,
        seconds since boot (toybox toys/lsb/dmesg.c, format_message). The clock is the one
        the phone's /proc/uptime shows (CLOCK_BOOTTIME, shared with the host), so the two
        can be compared as on a phone."""
        uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        stamp = f"[{int(uptime):5d}.{int(uptime % 1 * 1_000_000):06d}] "
        fd = os.open(self.ctl / KMSG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, "".join(stamp + line + "\n" for line in lines).encode())
        finally:
            os.close(fd)

    def kmsg_text(self) -> str:
        try:
            return (self.ctl / KMSG_FILE).read_text()
        except OSError:
            return ""

    def logcat_clear(self) -> None:
        write_in_place(self.ctl / LOGCAT_FILE, "")

    def logcat_text(self) -> str:
        return (self.ctl / LOGCAT_FILE).read_text()

    # ---- the daemon's tick ----------------------------------------------------------------
    def tick(self, root: Path, now_wall: float) -> None:
        """Advance the phone to wall time ``now_wall`` and refresh every file it shows."""
        with self._locked():
            procs = self._read_procs(prune=True)
            loaded = any(p.power_w > 0 for p in procs)
            th = self._load_thermal()
            if th.last_tick_wall is not None:
                elapsed_sim = max(now_wall - th.last_tick_wall, 0.0) / self.time_scale
                self._cool(th, elapsed_sim, loaded)
                self._tick_pressure(elapsed_sim)
            th.last_tick_wall = now_wall
            self._save_thermal(th)
            self._restart_apps(bool(procs), now_wall)
        self.render(root, th, procs, loaded)

    def _restart_apps(self, busy: bool, now_wall: float) -> None:
        """The user opens the killed apps again once no binary has run for a while."""
        apps = bg.load(self.ctl)
        if busy:
            if apps.freed_kb:
                bg.save(self.ctl, replace(apps, last_binary_wall=now_wall))
            return
        apps, started = bg.restart_due(apps, now_wall, self.time_scale)
        if started:
            bg.save(self.ctl, apps)
            for app in started:
                self.logcat_append("ActivityManager", "I", bg.start_line(app),
                                   SYSTEM_SERVER_PID)

    def _tick_pressure(self, sim_seconds: float) -> None:
        """Advance /proc/pressure/memory (:mod:`harness.sim.sensors`) by ``sim_seconds``."""
        share = sensors.stall_share(self.profile, self.available_kb())
        st = sensors.advance_psi(sensors.load_psi(self.ctl), share, sim_seconds)
        sensors.save_psi(self.ctl, st)
        write_in_place(self.ctl / sensors.PSI_FILE, sensors.psi_text(st))

    def render(self, root: Path, th: ThermalState, procs: list[ProcInfo],
               loaded: bool) -> None:
        """Write meminfo, the dumpsys texts and the fake kernel files under ``root``."""
        self.render_meminfo(procs)
        view = self.kernel_view(th, loaded, sum(p.power_w for p in procs))
        for name, text in ((BATTERY_DUMP_FILE, devtools.dumpsys_battery_text(self.profile, view)),
                           (THERMAL_DUMP_FILE, devtools.dumpsys_thermal_text(self.profile, view))):
            if self._render_cache.get(name) != text:
                _replace_text(self.ctl / name, text)
                self._render_cache[name] = text
        devtools.render_kernel_files(root, self.profile, view, self._render_cache)

    def kernel_view(self, th: ThermalState, loaded: bool,
                    load_w: float = 0.0) -> devtools.KernelView:
        temps = temperatures_for(self.profile, th)
        return devtools.KernelView(
            soc_c=th.soc_c, skin_c=temps.skin_c, battery_c=th.battery_c,
            battery_level=int(th.battery_level), charging=th.charging, loaded=loaded,
            throttle=throttle_for(self.profile, th.soc_c),
            time_in_state=tuple(tuple(row) for row in th.time_in_state),
            load_w=load_w, charge_w=USB_CHARGE_W)


def _boot_log(profile: PhoneProfile, now: float) -> str:
    entries = [
        ("init", "I", "Service 'lmkd' (pid 587) started", 1),
        ("lowmemorykiller", "I", "Using psi monitors for memory pressure detection", LMKD_PID),
        ("lowmemorykiller", "I", "Process polling is supported", LMKD_PID),
        ("init", "I", f"Service 'adbd' (pid {ADBD_PID}) started", 1),
        ("adbd", "I", "adbd started", ADBD_PID),
        ("thermal-engine", "I", f"Thermal-Engine daemon started on {profile.board_platform}",
         THERMAL_ENGINE_PID),
        ("ActivityManager", "I", "System now ready", SYSTEM_SERVER_PID),
        ("BootReceiver", "I", "Boot completed", SYSTEM_SERVER_PID),
        *(("ActivityManager", "I", bg.start_line(app), SYSTEM_SERVER_PID)
          for app in bg.initial().apps),
    ]
    lines = ["--------- beginning of system\n", "--------- beginning of main\n"]
    start = now - len(entries) * BOOT_LOG_SPACING_S
    lines += [logcat_line(tag, prio, msg, pid, now=start + i * BOOT_LOG_SPACING_S)
              for i, (tag, prio, msg, pid) in enumerate(entries)]
    return "".join(lines)


def _boot_kmsg(profile: PhoneProfile) -> list[str]:
    return ["Booting Linux on physical CPU 0x0000000000 [0x410fd801]",
            f"Machine model: Qualcomm Technologies, Inc. {profile.board_platform.upper()} "
            f"{profile.soc_model}",
            f"Memory: {profile.memtotal_kb}K/{profile.ram_gb * 1024 * 1024}K available"]


def init_phone(ctl: Path, profile: PhoneProfile, serial: str, time_scale: float) -> PhoneState:
    """Boot a phone's state: profile, ambient temperatures, a fresh logcat, no processes."""
    ctl.mkdir(parents=True, exist_ok=True)
    if time_scale <= 0:
        raise ValueError(f"time_scale must be positive, got {time_scale}")
    now = time.time()
    _write_json(ctl / PROFILE_FILE, {"profile": profile.to_dict(), "serial": serial,
                                     "time_scale": time_scale, "boot_wall": now})
    (ctl / LOCK_FILE).touch()
    procs = ctl / PROCS_DIR
    procs.mkdir(exist_ok=True)
    for stale in procs.iterdir():
        stale.unlink(missing_ok=True)
    th = ThermalState.initial(profile)
    _write_json(ctl / THERMAL_FILE, asdict(th))
    bg.save(ctl, bg.initial())
    write_in_place(ctl / KMSG_FILE, "".join(
        f"[    0.{i * 1371:06d}] {line}\n" for i, line in enumerate(_boot_kmsg(profile))))
    write_in_place(ctl / LOGCAT_FILE, _boot_log(profile, now))
    state = PhoneState(ctl)
    state.render_meminfo([])
    sensors.save_psi(ctl, sensors.PsiState())
    write_in_place(ctl / sensors.PSI_FILE, sensors.psi_text(sensors.PsiState()))
    view = state.kernel_view(th, loaded=False)
    _replace_text(ctl / BATTERY_DUMP_FILE, devtools.dumpsys_battery_text(profile, view))
    _replace_text(ctl / THERMAL_DUMP_FILE, devtools.dumpsys_thermal_text(profile, view))
    return state
