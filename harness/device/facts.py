"""A phone's facts — identity, memory, storage, battery, temperatures, CPU frequencies —
read with one device command and parsed here (pure, unit tested on text).

Units: kB as the kernel prints them; temperatures in °C (battery is reported in tenths,
thermal zones usually in millidegrees; both are normalised); frequencies in kHz.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

# Marketed RAM sizes a phone is sold with; MemTotal is rounded up to the next of these.
MARKETED_RAM_GB = (2, 3, 4, 6, 8, 12, 16, 18, 24, 32)
KIB_PER_GIB = 1024 * 1024

SECTION = "@@harness:"
FACTS_COMMAND = "; ".join([
    f"echo {SECTION}props", "getprop",
    f"echo {SECTION}meminfo", "cat /proc/meminfo",
    f"echo {SECTION}df", "df -k /data 2>/dev/null",
    f"echo {SECTION}battery", "dumpsys battery 2>/dev/null",
    # One grep for every sysfs value ("path:value" lines; missing files are skipped).
    f"echo {SECTION}sysfs",
    "grep -H . /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp "
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq "
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq "
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_max_freq "
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/stats/time_in_state 2>/dev/null",
    f"echo {SECTION}id", "id -u",
    f"echo {SECTION}su", "command -v su 2>/dev/null",
    f"echo {SECTION}end",
])
# Temperatures and battery only (what a run records after its steps; the identity, memory
# and storage it recorded at the start cannot have changed meanwhile): battery, then the
# thermal zones' type and temp lines. Parsed by :func:`parse_facts` like the full read.
TEMPS_COMMAND = "; ".join([
    f"echo {SECTION}battery", "dumpsys battery 2>/dev/null",
    f"echo {SECTION}sysfs",
    "grep -H . /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp "
    "2>/dev/null",
    f"echo {SECTION}end",
])


@dataclass(frozen=True)
class CpuFreq:
    cpu: str
    cur_khz: int | None
    max_khz: int | None
    scaling_max_khz: int | None  # below max_khz: the governor is capping (throttling)
    # kHz -> time spent there, in USER_HZ ticks (10 ms), where stats/time_in_state is readable
    time_in_state: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceFacts:
    serial: str
    model: str = ""
    manufacturer: str = ""
    soc_model: str = ""
    board_platform: str = ""
    android_release: str = ""
    sdk: int | None = None
    abi: str = ""
    fingerprint: str = ""
    mem_total_kb: int | None = None
    mem_available_kb: int | None = None
    data_free_kb: int | None = None
    battery_level: int | None = None
    battery_temp_c: float | None = None
    thermal_c: dict[str, float] = field(default_factory=dict)
    cpus: list[CpuFreq] = field(default_factory=list)
    uid: int | None = None
    rooted: bool = False

    @property
    def marketed_ram_gb(self) -> int | None:
        return marketed_ram_gb(self.mem_total_kb)

    @property
    def max_temp_c(self) -> float | None:
        temps = list(self.thermal_c.values())
        if self.battery_temp_c is not None:
            temps.append(self.battery_temp_c)
        return max(temps) if temps else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["marketed_ram_gb"] = self.marketed_ram_gb
        return data


def marketed_ram_gb(mem_total_kb: int | None) -> int | None:
    """Round MemTotal up to the next size phones are sold with (a "16 GB" phone shows
    ~14.5-15.3 GiB because of carve-outs for modem, GPU and firmware)."""
    if not mem_total_kb:
        return None
    gib = mem_total_kb / KIB_PER_GIB
    for size in MARKETED_RAM_GB:
        if gib <= size:
            return size
    return math.ceil(gib)


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.startswith(SECTION):
            current = line[len(SECTION):].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


PROP_RE = re.compile(r"^\[(?P<key>[^\]]+)\]: \[(?P<value>.*)\]$")


def parse_props(lines: list[str]) -> dict[str, str]:
    props = {}
    for line in lines:
        match = PROP_RE.match(line)
        if match:
            props[match["key"]] = match["value"]
    return props


def parse_meminfo(lines: list[str]) -> dict[str, int]:
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0])
    return values


def parse_df_free_kb(lines: list[str]) -> int | None:
    for line in lines[1:]:
        parts = line.split()
        if len(parts) >= 4 and parts[3].isdigit():
            return int(parts[3])
    return None


def parse_battery(lines: list[str]) -> tuple[int | None, float | None]:
    level = temp = None
    for line in lines:
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "level" and value.lstrip("-").isdigit():
            level = int(value)
        elif key == "temperature" and value.lstrip("-").isdigit():
            temp = int(value) / 10.0  # tenths of a degree
    return level, temp


def zone_celsius(raw: int) -> float:
    """Thermal zones report millidegrees on most phones, whole degrees on a few."""
    return raw / 1000.0 if abs(raw) > 500 else float(raw)


def parse_sysfs(lines: list[str]) -> tuple[dict[str, float], list[CpuFreq]]:
    """``grep -H`` output of thermal zone and cpufreq files -> (zones, cpus)."""
    values: dict[str, str] = {}
    residency: dict[str, dict[int, int]] = {}
    for line in lines:
        path, sep, value = line.partition(":")
        if not sep:
            continue
        if path.endswith("/stats/time_in_state"):
            parts = value.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                cpu = path.split("/cpufreq/")[0].rsplit("/", 1)[-1]
                residency.setdefault(cpu, {})[int(parts[0])] = int(parts[1])
            continue
        values[path] = value.strip()
    zones: dict[str, float] = {}
    for path in sorted(values, key=_natural):
        if path.endswith("/type") and "/thermal_zone" in path:
            temp = values.get(path[: -len("type")] + "temp", "")
            if not temp.lstrip("-").isdigit():
                continue
            name, suffix = values[path], 2
            while name in zones:
                name = f"{values[path]}#{suffix}"
                suffix += 1
            zones[name] = zone_celsius(int(temp))
    cpus: dict[str, dict[str, int]] = {}
    for path, value in values.items():
        match = CPUFREQ_RE.search(path)
        if match and value.isdigit():
            cpus.setdefault(match["cpu"], {})[match["file"]] = int(value)
    for cpu in residency:
        cpus.setdefault(cpu, {})
    return zones, [CpuFreq(cpu, f.get("scaling_cur_freq"), f.get("cpuinfo_max_freq"),
                           f.get("scaling_max_freq"), residency.get(cpu, {}))
                   for cpu, f in sorted(cpus.items(), key=lambda kv: _natural(kv[0]))]


CPUFREQ_RE = re.compile(r"/(?P<cpu>cpu\d+)/cpufreq/(?P<file>\w+)$")


def _natural(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def parse_facts(serial: str, text: str) -> DeviceFacts:
    sec = _sections(text)
    props = parse_props(sec.get("props", []))
    mem = parse_meminfo(sec.get("meminfo", []))
    level, temp = parse_battery(sec.get("battery", []))
    uid_lines = [ln.strip() for ln in sec.get("id", []) if ln.strip()]
    uid = int(uid_lines[0]) if uid_lines and uid_lines[0].isdigit() else None
    sdk_text = props.get("ro.build.version.sdk", "")
    zones, cpus = parse_sysfs(sec.get("sysfs", []))
    return DeviceFacts(
        serial=serial,
        model=props.get("ro.product.model", ""),
        manufacturer=props.get("ro.product.manufacturer", ""),
        soc_model=props.get("ro.soc.model", ""),
        board_platform=props.get("ro.board.platform", ""),
        android_release=props.get("ro.build.version.release", ""),
        sdk=int(sdk_text) if sdk_text.isdigit() else None,
        abi=props.get("ro.product.cpu.abi", ""),
        fingerprint=props.get("ro.build.fingerprint", ""),
        mem_total_kb=mem.get("MemTotal"),
        mem_available_kb=mem.get("MemAvailable"),
        data_free_kb=parse_df_free_kb(sec.get("df", [])),
        battery_level=level,
        battery_temp_c=temp,
        thermal_c=zones,
        cpus=cpus,
        uid=uid,
        rooted=uid == 0 or any(ln.strip() for ln in sec.get("su", [])),
    )


@dataclass(frozen=True)
class Requirements:
    min_ram_gb: float | None = None  # marketed size (see seed-facts.md, "Phones in general")
    socs: tuple[str, ...] = ()  # e.g. ("SM8650",); empty: any

    def unmet(self, ram_gb: float | None, soc: str | None) -> list[str]:
        """Why a phone (marketed RAM in GB, SoC model) does not qualify; empty if it does.

        Unknown facts (None) do not disqualify: the caller decides how strict to be.
        """
        reasons = []
        if self.min_ram_gb is not None and ram_gb is not None and ram_gb < self.min_ram_gb:
            reasons.append(f"needs {self.min_ram_gb:g} GB of RAM, the phone has {ram_gb:g} GB")
        if self.socs and soc is not None and soc.upper() not in {s.upper() for s in self.socs}:
            reasons.append(f"needs SoC {' or '.join(self.socs)}, the phone has {soc}")
        return reasons
