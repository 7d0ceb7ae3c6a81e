"""A phone's conditions around a run, read in one adb round trip without root.

- thermal status: ``dumpsys thermalservice``'s ``Thermal Status: N`` (PowerManager's 0 NONE ..
  6 SHUTDOWN; Android 10+). Absent (None) on phones without the service;
- battery: level, temperature (tenths of °C in ``dumpsys battery``) and whether it charges
  (``status: 2`` is BatteryManager.BATTERY_STATUS_CHARGING, 5 FULL);
- thermal zones (``/sys/class/thermal/thermal_zone*/{type,temp}``, m°C);
- per cpufreq policy (one per cluster: ``/sys/devices/system/cpu/cpufreq/policy*``):
  ``cpuinfo_max_freq``, ``scaling_max_freq`` (lowered when the phone caps the cluster) and
  ``stats/time_in_state`` (kHz and USER_HZ ticks of 10 ms), all world-readable on ordinary
  phones.

:func:`delta` turns two reads into what happened during the run: seconds per frequency per
cluster, the highest frequency used, and the lowest cap seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.device.device import Device
from harness.device.facts import SECTION, parse_battery, zone_celsius

USER_HZ = 100  # time_in_state counts clock ticks of 10 ms
POLICY_DIR = "/sys/devices/system/cpu/cpufreq"
CHARGING_STATUSES = (2, 5)  # BatteryManager: CHARGING, FULL (on the charger)

CONDITIONS_COMMAND = "; ".join([
    f"echo {SECTION}thermal", "dumpsys thermalservice 2>/dev/null | grep 'Thermal Status'",
    f"echo {SECTION}battery", "dumpsys battery 2>/dev/null",
    f"echo {SECTION}sysfs",
    "grep -H . /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp "
    f"{POLICY_DIR}/policy*/cpuinfo_max_freq {POLICY_DIR}/policy*/scaling_max_freq "
    f"{POLICY_DIR}/policy*/stats/time_in_state 2>/dev/null",
    f"echo {SECTION}end", "true",
])


@dataclass(frozen=True)
class Cluster:
    policy: str  # policy0, policy4, ...
    max_khz: int | None
    cap_khz: int | None  # scaling_max_freq
    time_in_state: dict[int, int] = field(default_factory=dict)  # kHz -> ticks


@dataclass(frozen=True)
class Conditions:
    thermal_status: int | None = None
    battery_level: int | None = None
    battery_c: float | None = None
    charging: bool | None = None
    zones: dict[str, float] = field(default_factory=dict)
    clusters: tuple[Cluster, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clusters"] = [{**asdict(c), "time_in_state": {str(k): v for k, v in
                                                           c.time_in_state.items()}}
                            for c in self.clusters]
        return data


def _sections(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.startswith(SECTION):
            current = found.setdefault(line[len(SECTION):].strip(), [])
        elif current is not None:
            current.append(line)
    return found


def _status(lines: list[str]) -> int | None:
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "Thermal Status" and value.strip().isdigit():
            return int(value.strip())
    return None


def _charging(lines: list[str]) -> bool | None:
    for line in lines:
        key, _, value = line.strip().partition(":")
        if key == "status" and value.strip().isdigit():
            return int(value.strip()) in CHARGING_STATUSES
    return None


def _sysfs(lines: list[str]) -> tuple[dict[str, float], tuple[Cluster, ...]]:
    types: dict[str, str] = {}
    temps: dict[str, str] = {}
    files: dict[str, dict[str, int]] = {}
    residency: dict[str, dict[int, int]] = {}
    for line in lines:
        path, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        if path.startswith("/sys/class/thermal/"):
            zone, _, name = path.rpartition("/")
            (types if name == "type" else temps)[zone] = value
        elif path.startswith(POLICY_DIR + "/"):
            policy = path[len(POLICY_DIR) + 1:].split("/", 1)[0]
            if path.endswith("/stats/time_in_state"):
                parts = value.split()
                if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    residency.setdefault(policy, {})[int(parts[0])] = int(parts[1])
            elif value.isdigit():
                files.setdefault(policy, {})[path.rsplit("/", 1)[1]] = int(value)
    zones: dict[str, float] = {}
    for zone in sorted(types):
        temp = temps.get(zone, "")
        if temp.lstrip("-").isdigit():
            name, n = types[zone], 2
            while name in zones:
                name, n = f"{types[zone]}#{n}", n + 1
            zones[name] = zone_celsius(int(temp))
    policies = sorted(set(files) | set(residency), key=lambda p: int(p[6:] or 0)
                      if p[6:].isdigit() else 0)
    clusters = tuple(Cluster(p, files.get(p, {}).get("cpuinfo_max_freq"),
                             files.get(p, {}).get("scaling_max_freq"), residency.get(p, {}))
                     for p in policies)
    return zones, clusters


def parse_conditions(text: str) -> Conditions:
    sec = _sections(text)
    level, temp = parse_battery(sec.get("battery", []))
    zones, clusters = _sysfs(sec.get("sysfs", []))
    return Conditions(_status(sec.get("thermal", [])), level, temp,
                      _charging(sec.get("battery", [])), zones, clusters)


def read_conditions(device: Device) -> Conditions:
    return parse_conditions(device.run(CONDITIONS_COMMAND, timeout=60).out)


@dataclass(frozen=True)
class ClusterDelta:
    policy: str
    seconds_by_khz: dict[int, float]  # time spent at each frequency during the run
    top_khz: int | None  # the highest frequency used during the run
    max_khz: int | None
    cap_khz: int | None  # the lowest scaling_max_freq seen before and after

    @property
    def capped(self) -> bool:
        return self.cap_khz is not None and self.max_khz is not None \
            and self.cap_khz < self.max_khz


def delta(before: Conditions, after: Conditions) -> list[ClusterDelta]:
    """Per cluster: time_in_state differences and the cap (policies read both times)."""
    old: Mapping[str, Cluster] = {c.policy: c for c in before.clusters}
    found = []
    for cluster in after.clusters:
        prev = old.get(cluster.policy)
        if prev is None:
            continue
        seconds = {khz: (ticks - prev.time_in_state.get(khz, 0)) / USER_HZ
                   for khz, ticks in cluster.time_in_state.items()}
        seconds = {k: s for k, s in seconds.items() if s > 0}
        caps = [c for c in (prev.cap_khz, cluster.cap_khz) if c is not None]
        found.append(ClusterDelta(cluster.policy, seconds, max(seconds) if seconds else None,
                                  cluster.max_khz or prev.max_khz,
                                  min(caps) if caps else None))
    return found
