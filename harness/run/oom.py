"""Out-of-memory verdicts from the evidence a phone really gives.

On AOSP, lmkd kills only processes that ActivityManager registered (apps); a native binary
started from ``adb shell`` is not one. When it runs out of memory, lmkd first kills apps
(logcat, tag ``lowmemorykiller``), then the kernel's OOM killer SIGKILLs the binary and says
so only in the kernel log, which ``dmesg`` shows to root alone on most phones; ``adb shell``
reports exit status 137 (128 + SIGKILL). Some vendors' lmkd kills native processes too and
names them. This module combines what there is:

- the exit status (137, or none when the wrapper died with it);
- lmkd's kill lines during the step (the binary's own, or apps' ones: memory ran out);
- the kernel's ``Out of memory: Killed process N (comm) ...`` line where it is readable;
- the memory curve: MemAvailable near its floor and the process's peak (from telemetry
  samples when there are some, else /proc/meminfo before and after and the kill lines);
- PSI (``/proc/pressure/memory``);
- the binary's own log lines and their times, for the phase that was running.

It names the killed process, its peak RSS, the phone's RAM (marketed and MemTotal), the phase,
and a remedy that is true for this run, with a confidence word when evidence is partial.
Pure functions over text and numbers: every rule is unit tested on the sources' own formats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.device.facts import marketed_ram_gb

SIGKILL_STATUS = 137  # a POSIX shell's 128 + 9
TASK_COMM_CHARS = 15  # the kernel's task name: TASK_COMM_LEN 16 with its NUL
# "MemAvailable near its floor": lmkd kills cached apps from a few hundred MB on big phones.
LOW_AVAILABLE_FRACTION = 0.10
LOW_AVAILABLE_MIN_KB = 1024 * 1024
# lmkd's PSI thresholds (lmkd.cpp, ro.lmk.psi_partial_stall_ms 70 of a 1000 ms window).
PSI_SOME_STALL_PCT = 7.0
WINDOW_SLACK_S = 5.0  # clocks and log flushing: kill lines this late still belong to a step

# AOSP system/memory/lmkd/lmkd.cpp kill_one_process: "Kill '%s' (%d), uid %d, oom_score_adj
# %d to free %ldkB rss, %ldkB swap; reason: %s" (without a reason: "...kb swap"); older
# lmkd.c: "Killing '%s' (%d), uid %d, adj %d\n   to free %ldkB because ...".
LMKD_KILL_RE = re.compile(
    r"(?:lowmemorykiller|lmkd)\b.*?\bKill(?:ing)? '(?P<name>[^']+)' \((?P<pid>\d+)\), "
    r"uid (?P<uid>\d+), (?:oom_score_adj|adj) (?P<adj>-?\d+)"
    r"(?:\s+to free (?P<rss>\d+)kB(?: rss, (?P<swap>\d+)kB swap)?)?"
    r"(?:; reason: (?P<reason>.+))?", re.I)
# mm/oom_kill.c __oom_kill_process: "%s: Killed process %d (%s) total-vm:%lukB,
# anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB, UID:%u pgtables:%lukB oom_score_adj:%hd"
# (older kernels: no UID/pgtables/oom_score_adj, or "... shmem-rss:%lukB, UID %d").
KERNEL_KILL_RE = re.compile(
    r"Killed process (?P<pid>\d+) \((?P<comm>.{1,16}?)\) total-vm:(?P<vm>\d+)kB, "
    r"anon-rss:(?P<anon>\d+)kB, file-rss:(?P<file>\d+)kB(?:, shmem-rss:(?P<shmem>\d+)kB)?"
    r"(?:,? UID[: ](?P<uid>\d+))?(?: pgtables:\d+kB)?(?: oom_score_adj:(?P<adj>-?\d+))?")
DMESG_STAMP_RE = re.compile(r"^\s*(?:<\d+>)?\[\s*(?P<t>\d+\.\d+)\]")
LOGCAT_STAMP_RE = re.compile(r"^(?P<stamp>\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})")

PHASE_WORDS = (
    ("VAE", re.compile(r"\bvae\b|\bvae_?decod", re.I)),
    ("UNet", re.compile(r"\bunet\b|\bdenois\w*|\bsampl(?:er|ing)\b|^\[\w+\] step \d+\s*/",
                        re.I)),
    ("CLIP", re.compile(r"\bclip\b|\btext[ _-]?encod\w*|\btokeni[sz]", re.I)),
)
PHASE_DONE_RE = re.compile(r"^\[perf\]|\b(?:released|done|finished|saved|complete[d]?)\b",
                           re.I)
PHASE_SKIPPED_RE = re.compile(r"\bskip(?:ped|ping)?\b", re.I)


@dataclass(frozen=True)
class LmkdKill:
    name: str
    pid: int
    uid: int
    adj: int
    rss_kb: int | None
    swap_kb: int | None
    reason: str | None
    stamp: str | None  # logcat threadtime "MM-DD HH:MM:SS.mmm"
    line: str


@dataclass(frozen=True)
class KernelKill:
    pid: int
    comm: str
    total_vm_kb: int
    rss_kb: int  # anon + file + shmem
    uid: int | None
    adj: int | None
    uptime_s: float | None  # the dmesg stamp
    line: str


@dataclass(frozen=True)
class PhoneClock:
    """The phone's own clock at one instant (to window logcat and dmesg lines)."""

    stamp: str | None = None  # logcat's "MM-DD HH:MM:SS"
    uptime_s: float | None = None  # /proc/uptime, dmesg's clock


@dataclass(frozen=True)
class OomEvidence:
    """What the runner gathered around a step that may have run out of memory."""

    binary: str
    exit_code: int | None
    timed_out: bool = False
    duration_s: float | None = None
    lines: Sequence[tuple[float | None, str]] = ()  # the binary's lines, seconds since start
    logcat: str = ""  # lmkd lines that appeared during the step
    kernel_log: str | None = None  # dmesg output; None: not readable
    kernel_unreadable: str | None = None  # why not (e.g. dmesg's own error)
    start: PhoneClock = field(default_factory=PhoneClock)
    end: PhoneClock = field(default_factory=PhoneClock)
    mem_total_kb: int | None = None
    available_before_kb: int | None = None
    available_after_kb: int | None = None
    psi_after: Mapping[str, float] = field(default_factory=dict)  # some/full avg10
    samples: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)
    ram_gb: int | None = None  # marketed
    needs_ram_gb: float | None = None
    fitting: tuple[str, ...] | None = None
    rules: frozenset[str] = frozenset()  # the step's lint findings


@dataclass(frozen=True)
class Phase:
    name: str  # CLIP, UNet or VAE
    finished: bool  # its last line says it ended: the next phase was starting
    line: str
    at_s: float | None


@dataclass(frozen=True)
class OomVerdict:
    confidence: str  # certain | likely | possible
    killer: str
    process: str
    pid: int | None
    peak_rss_kb: int | None
    peak_source: str | None
    needed_over_kb: int | None  # it asked for more than this (MemAvailable + what lmkd freed)
    ram_gb: int | None
    mem_total_kb: int | None
    available_before_kb: int | None  # MemAvailable when the step started
    min_available_kb: int | None  # its low point during the step (telemetry only)
    psi_some_avg10: float | None
    psi_full_avg10: float | None
    phase: Phase | None
    apps_killed: tuple[LmkdKill, ...]
    kernel_line: str | None
    lmkd_line: str | None
    kernel_log: str  # read | unreadable: why | not read
    remedy: str
    evidence: tuple[str, ...]

    def sentence(self) -> str:
        who = f"{self.process}" + (f" (pid {self.pid})" if self.pid is not None else "")
        lead = {"certain": "out of memory", "likely": "out of memory (likely)",
                "possible": "possibly out of memory"}[self.confidence]
        parts = [f"{lead}: {who} was killed by the {self.killer}"]
        if self.phase is not None:
            parts.append(_phase_words(self.phase))
        parts.append(f"peak RSS {_size(self.peak_rss_kb, self.peak_source, self.needed_over_kb)}"
                     f" on a {_ram(self.ram_gb, self.mem_total_kb)} phone")
        text = ", ".join(parts) + f"; evidence: {'; '.join(self.evidence)}"
        return text + (f"; remedy: {self.remedy}" if self.remedy else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """The figures for the store's metrics table (``oom.*``)."""
        values = {"oom.confidence": {"certain": 1.0, "likely": 0.7, "possible": 0.3}[
            self.confidence], "oom.apps_killed": float(len(self.apps_killed))}
        for name, value in (("oom.peak_rss_kb", self.peak_rss_kb),
                            ("oom.mem_total_kb", self.mem_total_kb),
                            ("oom.min_available_kb", self.min_available_kb),
                            ("oom.ram_gb", self.ram_gb),
                            ("oom.psi_full_avg10", self.psi_full_avg10)):
            if value is not None:
                values[name] = float(value)
        return values


# ---- parsing ---------------------------------------------------------------------------------

def parse_lmkd(text: str) -> list[LmkdKill]:
    out = []
    for line in text.splitlines():
        m = LMKD_KILL_RE.search(line)
        if not m:
            continue
        stamp = LOGCAT_STAMP_RE.match(line.strip())
        out.append(LmkdKill(m["name"], int(m["pid"]), int(m["uid"]), int(m["adj"]),
                            _int(m["rss"]), _int(m["swap"]),
                            m["reason"].strip() if m["reason"] else None,
                            stamp["stamp"] if stamp else None, line.strip()))
    return out


def parse_kernel(text: str) -> list[KernelKill]:
    out = []
    for line in text.splitlines():
        m = KERNEL_KILL_RE.search(line)
        if not m:
            continue
        stamp = DMESG_STAMP_RE.match(line)
        rss = int(m["anon"]) + int(m["file"]) + int(m["shmem"] or 0)
        out.append(KernelKill(int(m["pid"]), m["comm"], int(m["vm"]), rss, _int(m["uid"]),
                              _int(m["adj"]), float(stamp["t"]) if stamp else None,
                              line.strip()))
    return out


def parse_psi(text: str) -> dict[str, float]:
    """``/proc/pressure/memory``: ``some avg10=1.23 avg60=... total=...`` and ``full ...``."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*(some|full)\s+avg10=([\d.]+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def _int(text: str | None) -> int | None:
    return int(text) if text is not None else None


def names_of(binary: str) -> set[str]:
    """How logs name a binary: its file name, or the kernel's 15-character cut of it."""
    name = binary.rsplit("/", 1)[-1]
    return {name, name[:TASK_COMM_CHARS]}


def _in_window(stamp: str | None, start: PhoneClock, end: PhoneClock) -> bool:
    """Whether a logcat stamp falls in the step, to the second ("MM-DD HH:MM:SS" compares as
    text within one year)."""
    if stamp is None:
        return True
    second = stamp[:14]
    return ((start.stamp is None or second >= start.stamp[:14])
            and (end.stamp is None or second <= end.stamp[:14]))


def _in_uptime(t: float | None, start: PhoneClock, end: PhoneClock) -> bool:
    if t is None:
        return True
    if start.uptime_s is not None and t < start.uptime_s - 1.0:
        return False
    return end.uptime_s is None or t <= end.uptime_s + WINDOW_SLACK_S


# ---- the phase -------------------------------------------------------------------------------

def running_phase(binary: str, lines: Sequence[tuple[float | None, str]]) -> Phase | None:
    """The phase the binary was in when it died, from its own last lines that name one (CLIP,
    UNet, VAE; words as various binaries print them)."""
    finished_after = False
    for at_s, raw in reversed(lines):
        line = raw.strip()
        if not line or PHASE_SKIPPED_RE.search(line):
            continue
        found = [(m.start(), name) for name, rx in PHASE_WORDS if (m := rx.search(line))]
        if not found:
            finished_after = finished_after or bool(PHASE_DONE_RE.search(line))
            continue
        name = min(found)[1]  # the first phase the line names
        return Phase(name, finished_after or bool(PHASE_DONE_RE.search(line)), line, at_s)
    if "vae" in binary.rsplit("/", 1)[-1].lower():
        return Phase("VAE", False, "", None)
    return None


def _phase_words(phase: Phase) -> str:
    when = f" at {phase.at_s:.1f} s" if phase.at_s is not None else ""
    shown = f" (last line{when}: {phase.line!r})" if phase.line else ""
    if phase.finished:
        return f"after {phase.name} had finished, as the next phase began{shown}"
    return f"during {phase.name}{shown}"


# ---- the memory curve ------------------------------------------------------------------------

@dataclass(frozen=True)
class Curve:
    min_available_kb: int | None
    peak_rss_kb: int | None
    psi_some: float | None
    psi_full: float | None


def memory_curve(ev: OomEvidence) -> Curve:
    """The step's memory curve from telemetry samples (MemAvailable's low point and the peak
    are unknown without them); PSI from the samples, else from the read after the step."""
    s = ev.samples

    def extreme(name: str, pick: Any) -> float | None:
        values = [v for _t, v in s.get(name, ())]
        return pick(values) if values else None

    avail = extreme("mem_available_kb", min)
    peak = extreme("hwm_kb", max) or extreme("rss_kb", max)
    some = extreme("psi_some_avg10", max)
    full = extreme("psi_full_avg10", max)
    some = some if some is not None else ev.psi_after.get("some")
    full = full if full is not None else ev.psi_after.get("full")
    return Curve(None if avail is None else int(avail), None if peak is None else int(peak),
                 some, full)


def _low(available_kb: int | None, total_kb: int | None) -> bool:
    if available_kb is None:
        return False
    limit = max(LOW_AVAILABLE_MIN_KB, int((total_kb or 0) * LOW_AVAILABLE_FRACTION))
    return available_kb <= limit


def _gb(kb: int | float) -> str:
    return f"{kb / 1024 / 1024:.1f} GB"


def _size(peak: int | None, source: str | None, over: int | None) -> str:
    if peak is not None:
        return f"{_gb(peak)} ({source})"
    if over is not None:
        return f"unknown, above {_gb(over)} (MemAvailable at the start + what lmkd freed)"
    return "unknown (no telemetry, no kernel line)"


def _ram(ram_gb: int | None, total_kb: int | None) -> str:
    marketed = f"{ram_gb} GB" if ram_gb is not None else "? GB"
    return f"{marketed} (MemTotal {_gb(total_kb)})" if total_kb else marketed


# ---- the verdict -----------------------------------------------------------------------------

def judge(ev: OomEvidence) -> OomVerdict | None:
    """An OOM verdict when the evidence points at memory, else None (not an OOM, or nothing
    says so: the caller keeps its own diagnosis)."""
    if ev.timed_out:
        return None  # harness killed it
    names = names_of(ev.binary)
    kills = [k for k in parse_lmkd(ev.logcat) if _in_window(k.stamp, ev.start, ev.end)]
    own = [k for k in kills if k.name in names]
    apps = tuple(k for k in kills if k.name not in names)
    kernel = [k for k in parse_kernel(ev.kernel_log or "")
              if k.comm in names and _in_uptime(k.uptime_s, ev.start, ev.end)]
    sigkill = ev.exit_code == SIGKILL_STATUS or ev.exit_code is None
    if not (own or kernel or sigkill):
        return None
    curve = memory_curve(ev)
    total = ev.mem_total_kb
    clues = _clues(ev, apps, curve)
    if kernel:
        confidence, killer = "certain", "kernel's OOM killer"
    elif own:
        confidence, killer = "certain", "low-memory killer (lmkd names it)"
    elif clues:
        confidence, killer = "likely", "kernel's OOM killer (SIGKILL"
        killer += (f" {SIGKILL_STATUS}" if ev.exit_code == SIGKILL_STATUS else ", no exit status")
        killer += "; its own log line is not readable)" if ev.kernel_log is None \
            else "; no kernel line names it)"
    elif ev.needs_ram_gb is not None and ev.ram_gb is not None \
            and ev.ram_gb < ev.needs_ram_gb and ev.exit_code == SIGKILL_STATUS:
        confidence, killer = "possible", "kernel's OOM killer or another SIGKILL"
        clues = [f"exit {SIGKILL_STATUS} and the model needs {ev.needs_ram_gb:g} GB"]
    else:
        return None
    peak, source = _peak(kernel, own, curve)
    freed = sum(k.rss_kb or 0 for k in apps)
    over = (ev.available_before_kb + freed) if ev.available_before_kb is not None else None
    evidence = _evidence_lines(ev, kernel, own, clues)
    phase = running_phase(ev.binary, ev.lines)
    pid = kernel[-1].pid if kernel else own[-1].pid if own else None
    return OomVerdict(
        confidence, killer, ev.binary.rsplit("/", 1)[-1], pid, peak, source, over,
        ev.ram_gb if ev.ram_gb is not None else marketed_ram_gb(total), total,
        ev.available_before_kb, curve.min_available_kb, curve.psi_some, curve.psi_full, phase, apps,
        kernel[-1].line if kernel else None, own[-1].line if own else None,
        "read" if ev.kernel_log is not None else f"unreadable: {ev.kernel_unreadable}"
        if ev.kernel_unreadable else "not read",
        remedy(ev, peak or over), tuple(evidence))


def _clues(ev: OomEvidence, apps: Sequence[LmkdKill], curve: Curve) -> list[str]:
    """What says memory ran out, besides a line naming the binary."""
    out = []
    if apps:
        freed = sum(k.rss_kb or 0 for k in apps)
        shown = ", ".join(f"{k.name} (adj {k.adj})" for k in apps[:4])
        more = f" and {len(apps) - 4} more" if len(apps) > 4 else ""
        out.append(f"lmkd killed {len(apps)} app(s) during the step ({shown}{more}; "
                   f"{_gb(freed)} freed)")
    if _low(curve.min_available_kb, ev.mem_total_kb):
        out.append(f"MemAvailable fell to {_gb(curve.min_available_kb or 0)}"
                   + (f" of {_gb(ev.mem_total_kb)}" if ev.mem_total_kb else ""))
    if curve.psi_some is not None and curve.psi_some >= PSI_SOME_STALL_PCT:
        full = f", full {curve.psi_full:g}%" if curve.psi_full is not None else ""
        out.append(f"memory pressure (PSI some avg10 {curve.psi_some:g}%{full})")
    return out


def _peak(kernel: Sequence[KernelKill], own: Sequence[LmkdKill],
          curve: Curve) -> tuple[int | None, str | None]:
    """The killed process's peak: the killer's own figure first (it is the process's alone;
    telemetry sums the step's process tree, the shell wrapper included)."""
    if kernel:
        return kernel[-1].rss_kb, "kernel log"
    if own and own[-1].rss_kb is not None:
        return own[-1].rss_kb, "lmkd"
    if curve.peak_rss_kb is not None:
        return curve.peak_rss_kb, "telemetry"
    return None, None


def _evidence_lines(ev: OomEvidence, kernel: Sequence[KernelKill],
                    own: Sequence[LmkdKill], clues: Iterable[str]) -> list[str]:
    out = []
    if ev.exit_code == SIGKILL_STATUS:
        out.append(f"exit status {SIGKILL_STATUS} (SIGKILL)")
    elif ev.exit_code is None:
        out.append("no exit status")
    if kernel:
        out.append(f"kernel: {kernel[-1].line}")
    elif ev.kernel_log is None and ev.kernel_unreadable:
        out.append(f"kernel log unreadable ({ev.kernel_unreadable})")
    elif ev.kernel_log is not None:
        out.append("the kernel log has no OOM line for it")
    if own:
        out.append(f"lmkd: {own[-1].line}")
    out.extend(clues)
    return out


def remedy(ev: OomEvidence, used_kb: int | None) -> str:
    """What would make this run fit, true for this run."""
    name = ev.binary.rsplit("/", 1)[-1]
    if "SDXL_PREINIT" in ev.rules:
        return ("drop SDXL_PREINIT: with pre-initialisation CLIP and the UNet are resident "
                "together (the seed)")
    if "SDXL_SINGLE_PROCESS" in ev.rules:
        return ("split SDXL into a UNet-only process (SDXL_UNET_ONLY=1) and a VAE process, "
                "as the sdxl-1024 recipe does: one process keeps UNet buffers while the VAE "
                "runs (the seed)")
    needs = ev.needs_ram_gb
    if needs is not None and ev.ram_gb is not None and ev.ram_gb < needs:
        fits = ("" if ev.fitting is None else
                f"; phones in the farm that would fit: {', '.join(ev.fitting)}" if ev.fitting
                else "; no phone in the farm has that much")
        seed = " (the seed: SDXL 1024 needs 16 GB)" if "sdxl" in name.lower() else ""
        return (f"a phone with at least {needs:g} GB: the phone has {ev.ram_gb} GB of RAM, "
                f"too little{seed}{fits}")
    if needs is not None and ev.ram_gb is not None:
        return (f"the phone has {ev.ram_gb} GB, the {needs:g} GB {name} needs: something "
                "else held memory (fewer concurrent apps, no other adb shell binaries - "
                "lmkd does not kill those - or reboot the phone)")
    if used_kb is not None and ev.mem_total_kb is not None \
            and ev.available_before_kb is not None:
        floor = ev.mem_total_kb - ev.available_before_kb  # what Android held at the start
        size = marketed_ram_gb(used_kb + floor + LOW_AVAILABLE_MIN_KB)
        if size is not None and (ev.ram_gb is None or size > ev.ram_gb):
            return f"a phone with at least {size} GB of RAM, or fewer concurrent apps"
    return "fewer concurrent apps, or a phone with more RAM"


# ---- what the runner reads on the phone (one round trip before, one after) -------------------

CLOCK_MARK, PSI_MARK, DMESG_MARK, UNREADABLE_MARK = "@oom-clock", "@oom-psi", "@oom-dmesg", \
    "@oom-dmesg-unreadable"
# The phone's clocks (logcat's local time, dmesg's uptime) and its memory, readable as uid 2000.
PROBE_COMMAND = (f"echo {CLOCK_MARK} \"$(date '+%m-%d %H:%M:%S')\" \"$(cat /proc/uptime)\"; "
                 "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; true")
KERNEL_PATTERN = "Killed process|invoked oom-killer|oom_reaper"


def after_command(rooted: bool) -> str:
    """After a step that died: the clocks, memory, PSI and the kernel's OOM lines, with
    dmesg's own error when the kernel log is not readable (as uid 2000 on most phones; through
    ``su`` on a rooted one)."""
    su = (" || k=$(su -c dmesg 2>&1 </dev/null)" if rooted else "")
    return (f"{PROBE_COMMAND}; echo {PSI_MARK}; cat /proc/pressure/memory 2>/dev/null; "
            f"echo {DMESG_MARK}; if k=$(dmesg 2>&1){su}; then printf '%s\\n' \"$k\" | "
            f"grep -E '{KERNEL_PATTERN}'; else printf '{UNREADABLE_MARK} %s\\n' "
            "\"$(printf '%s\\n' \"$k\" | tail -n 1)\"; fi; true")


@dataclass(frozen=True)
class ProbeRead:
    clock: PhoneClock
    mem_total_kb: int | None
    available_kb: int | None
    psi: dict[str, float]
    kernel_log: str | None
    kernel_unreadable: str | None


def parse_probe(text: str) -> ProbeRead:
    """What :data:`PROBE_COMMAND` (and :func:`after_command`) printed."""
    clock, mem = PhoneClock(), {}
    section, psi_lines, kernel_lines = "", [], []
    unreadable: str | None = None
    for line in text.splitlines():
        if line.startswith(CLOCK_MARK + " "):
            rest = line[len(CLOCK_MARK) + 1:]
            up = rest[15:].split()
            clock = PhoneClock(rest[:14] if re.match(r"\d\d-\d\d \d\d:\d\d:\d\d", rest)
                               else None, float(up[0]) if up and _is_float(up[0]) else None)
        elif line in (PSI_MARK, DMESG_MARK):
            section = line
        elif line.startswith(UNREADABLE_MARK):
            unreadable = line[len(UNREADABLE_MARK):].strip() or "dmesg failed"
        elif m := re.match(r"(MemTotal|MemAvailable):\s+(\d+) kB", line):
            mem[m.group(1)] = int(m.group(2))
        elif section == PSI_MARK:
            psi_lines.append(line)
        elif section == DMESG_MARK:
            kernel_lines.append(line)
    read = section == DMESG_MARK and unreadable is None
    return ProbeRead(clock, mem.get("MemTotal"), mem.get("MemAvailable"),
                     parse_psi("\n".join(psi_lines)),
                     "\n".join(kernel_lines) if read else None, unreadable)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
