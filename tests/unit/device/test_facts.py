"""Parsing a phone's facts from the one-round-trip command's output."""

from __future__ import annotations

import time

import pytest

from harness.device.device import CommandResult, Device
from harness.device.facts import (
    FACTS_COMMAND,
    SECTION,
    TEMPS_COMMAND,
    marketed_ram_gb,
    parse_facts,
    zone_celsius,
)

SAMPLE = f"""{SECTION}props
[ro.product.model]: [SM-S9280]
[ro.product.manufacturer]: [samsung]
[ro.soc.model]: [SM8650]
[ro.board.platform]: [pineapple]
[ro.build.version.release]: [14]
[ro.build.version.sdk]: [34]
[ro.product.cpu.abi]: [arm64-v8a]
[weird.value]: [a [b] c]
{SECTION}meminfo
MemTotal:       15523456 kB\r
MemFree:         1000000 kB
MemAvailable:    9000000 kB
{SECTION}df
Filesystem     1K-blocks      Used Available Use% Mounted on
/dev/block/dm-48 230000000 30000000 200000000  14% /data
{SECTION}battery
Current Battery Service state:
  AC powered: false
  USB powered: true
  level: 87
  temperature: 312
{SECTION}sysfs
/sys/class/thermal/thermal_zone0/type:cpu-0-0-usr
/sys/class/thermal/thermal_zone1/type:gpuss-0
/sys/class/thermal/thermal_zone2/type:skin-therm
/sys/class/thermal/thermal_zone10/type:cpu-0-0-usr
/sys/class/thermal/thermal_zone3/type:broken
/sys/class/thermal/thermal_zone0/temp:41200
/sys/class/thermal/thermal_zone1/temp:39000
/sys/class/thermal/thermal_zone2/temp:35
/sys/class/thermal/thermal_zone10/temp:40000
/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq:1785600
/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq:2265600
/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq:2265600
/sys/devices/system/cpu/cpu7/cpufreq/scaling_cur_freq:3302400
/sys/devices/system/cpu/cpu7/cpufreq/cpuinfo_max_freq:3302400
/sys/devices/system/cpu/cpu0/cpufreq/stats/time_in_state:300000 1200
/sys/devices/system/cpu/cpu0/cpufreq/stats/time_in_state:2265600 345
{SECTION}id
2000
{SECTION}su
{SECTION}end
"""


def test_parse_full_sample() -> None:
    f = parse_facts("X1", SAMPLE)
    assert (f.model, f.soc_model, f.board_platform) == ("SM-S9280", "SM8650", "pineapple")
    assert (f.android_release, f.sdk, f.abi) == ("14", 34, "arm64-v8a")
    assert f.mem_total_kb == 15523456
    assert f.mem_available_kb == 9000000
    assert f.marketed_ram_gb == 16
    assert f.data_free_kb == 200000000
    assert (f.battery_level, f.battery_temp_c) == (87, 31.2)
    assert f.thermal_c == {"cpu-0-0-usr": 41.2, "gpuss-0": 39.0, "skin-therm": 35.0,
                           "cpu-0-0-usr#2": 40.0}
    assert f.max_temp_c == 41.2
    assert f.cpus[0].cur_khz == 1785600
    assert f.cpus[1].scaling_max_khz is None
    assert f.cpus[0].time_in_state == {300000: 1200, 2265600: 345}
    assert f.cpus[1].time_in_state == {}
    assert f.uid == 2000
    assert not f.rooted
    assert f.to_dict()["marketed_ram_gb"] == 16


def test_rooted_when_su_exists_or_uid_zero() -> None:
    assert parse_facts("X", SAMPLE.replace(f"{SECTION}su\n", f"{SECTION}su\n/system/xbin/su\n")).rooted
    assert parse_facts("X", SAMPLE.replace(f"{SECTION}id\n2000", f"{SECTION}id\n0")).rooted


def test_empty_output_gives_empty_facts() -> None:
    f = parse_facts("X", "")
    assert f.model == "" and f.mem_total_kb is None and f.marketed_ram_gb is None


@pytest.mark.parametrize(
    ("gib", "marketed"),
    [(7.3, 8), (7.9, 8), (11.2, 12), (14.5, 16), (15.3, 16), (17.4, 18), (22.9, 24), (40, 40)],
)
def test_marketed_ram_rounds_up(gib: float, marketed: int) -> None:
    assert marketed_ram_gb(int(gib * 1024 * 1024)) == marketed


def test_zone_units() -> None:
    assert zone_celsius(41200) == 41.2
    assert zone_celsius(35) == 35.0


def test_temps_command_reads_battery_and_zones_only() -> None:
    from harness.device.facts import TEMPS_COMMAND

    full = parse_facts("s", SAMPLE)
    kept = [part for part in SAMPLE.split(SECTION) if part.startswith(("battery", "sysfs"))]
    temps = parse_facts("s", SECTION + SECTION.join(kept))
    assert temps.thermal_c == full.thermal_c and temps.battery_temp_c == full.battery_temp_c
    assert temps.battery_level == full.battery_level and full.max_temp_c == temps.max_temp_c
    assert "getprop" not in TEMPS_COMMAND and "dumpsys battery" in TEMPS_COMMAND
    assert "thermal_zone*/temp" in TEMPS_COMMAND and "cpufreq" not in TEMPS_COMMAND


class _Phone(Device):
    """Answers the facts and temps reads from text; counts the reads."""

    def __init__(self, temps_text: str) -> None:
        super().__init__("S1")
        self.temps_text, self.commands = temps_text, list[str]()

    def run(self, command: object, *args: object, **kwargs: object) -> CommandResult:
        self.commands.append(str(command))
        text = SAMPLE if command == FACTS_COMMAND else self.temps_text
        return CommandResult("S1", str(command), 0, text.encode(), b"", 0.0)


def test_fresh_facts_reuse_a_recent_full_read_but_read_temperatures_again() -> None:
    hot = f"{SECTION}battery\n  temperature: 455\n  level: 40\n{SECTION}end\n"
    phone = _Phone(hot)
    first = phone.facts()
    again = phone.fresh_facts(max_age_s=60.0)
    assert phone.commands == [FACTS_COMMAND, TEMPS_COMMAND]
    assert (again.model, again.mem_total_kb) == (first.model, first.mem_total_kb)
    assert (again.battery_temp_c, again.battery_level) == (45.5, 40)  # the new read's
    assert again.battery_temp_c != first.battery_temp_c


def test_fresh_facts_read_everything_again_when_the_read_is_old() -> None:
    phone = _Phone("")
    phone.remember_facts(parse_facts("S1", SAMPLE), time.monotonic() - 5.0)
    phone.fresh_facts(max_age_s=2.0)
    assert phone.commands == [FACTS_COMMAND]
