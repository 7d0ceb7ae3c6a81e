"""A phone's runtime state: memory bookkeeping, heat, throttling, logcat, kernel files."""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from harness.sim import apps, profiles, state
from harness.sim.state import PhoneState

TIME_SCALE = 0.01


@pytest.fixture
def phone(tmp_path: Path) -> tuple[PhoneState, Path]:
    prof = profiles.load_profile("sm8650-16g")
    st = state.init_phone(tmp_path / "ctl", prof, "unit00", TIME_SCALE)
    return st, tmp_path / "root"


def meminfo(st: PhoneState) -> dict[str, int]:
    text = (st.ctl / state.MEMINFO_FILE).read_text()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+):\s+(\d+) kB$", text, re.M)}


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_init_writes_profile_thermal_logcat_meminfo(phone: tuple[PhoneState, Path]) -> None:
    st, _ = phone
    assert st.serial == "unit00" and st.time_scale == TIME_SCALE
    assert st.profile.name == "sm8650-16g"
    info = meminfo(st)
    assert info["MemTotal"] == st.profile.memtotal_kb
    assert info["MemAvailable"] == st.profile.memtotal_kb - st.profile.reserved_kb
    assert {"MemFree", "Buffers", "Cached", "SwapTotal", "SwapFree"} <= set(info)
    temps = st.temperatures()
    assert temps.cpu_c == temps.battery_c == st.profile.thermal.ambient_c
    assert "beginning of main" in st.logcat_text()
    assert "MemTotal:       15601452 kB\n" in (st.ctl / state.MEMINFO_FILE).read_text()


def test_memory_bookkeeping_keeps_meminfo_inode(phone: tuple[PhoneState, Path]) -> None:
    st, _ = phone
    path = st.ctl / state.MEMINFO_FILE
    inode, size = path.stat().st_ino, path.stat().st_size
    me = os.getpid()
    idle = st.available_kb()
    st.register_process(me, "sd15_pipeline_run", 1_000_000, 1_000_000, 5.0)
    assert st.available_kb() == idle - 1_000_000
    assert meminfo(st)["MemAvailable"] == idle - 1_000_000
    st.update_process(me, rss_kb=400_000)
    proc = st.processes()[0]
    assert (proc.rss_kb, proc.peak_kb) == (400_000, 1_000_000)
    assert re.search(r"^VmHWM:\s+1000000 kB$", st.status_path(me).read_text(), re.M)
    st.unregister_process(me)
    assert st.available_kb() == idle
    assert (path.stat().st_ino, path.stat().st_size) == (inode, size)
    assert not st.status_path(me).exists()


def test_request_memory_refuses_what_does_not_fit(phone: tuple[PhoneState, Path]) -> None:
    st, _ = phone
    me = os.getpid()
    idle = st.available_kb()
    quiet = idle - apps.LMKD_MINFREE_KB
    grant = st.request_memory(me, "x", quiet, 1.0)
    assert grant.granted and grant.killed == (), "above lmkd's minfree nobody is killed"
    ceiling = idle + sum(a.rss_kb for a in apps.initial().apps) - apps.OOM_FLOOR_KB
    grant = st.request_memory(me, "x", ceiling + 10, 1.0)
    assert not grant.granted
    assert [a.oom_score_adj for a in grant.killed] == [935, 925, 915, 905, 800]
    assert grant.rss_kb == ceiling  # it got what the kernel had before its OOM killer acted
    assert st.processes()[0].rss_kb == ceiling
    assert meminfo(st)["MemAvailable"] == apps.OOM_FLOOR_KB
    log = st.logcat_text()
    assert log.count(" I lowmemorykiller: Kill 'com.") == 5, log


def test_killed_apps_come_back_once_the_phone_is_idle(phone: tuple[PhoneState, Path]) -> None:
    st, root = phone
    me = os.getpid()
    idle = st.available_kb()
    st.request_memory(me, "x", idle, 1.0)
    assert st.available_kb(exclude_pid=me) > idle, "lmkd freed the apps' memory"
    st.unregister_process(me)
    later = time.time() + apps.APP_RESTART_S * st.time_scale + 1
    st.tick(root, later)
    assert st.available_kb() == idle
    assert st.logcat_text().count("I ActivityManager: Start proc ") == 2 * 5


def test_dead_processes_do_not_count_and_tick_prunes_them(
        phone: tuple[PhoneState, Path]) -> None:
    st, root = phone
    pid = dead_pid()
    st.register_process(pid, "sdxl_pipeline_run", 5_000_000, 5_000_000, 9.0)
    assert st.available_kb() == st.profile.memtotal_kb - st.profile.reserved_kb
    st.tick(root, 1000.0)
    assert not (st.procs_dir / f"{pid}.json").exists()
    assert not st.status_path(pid).exists()


def test_heating_cooling_and_throttle_math(phone: tuple[PhoneState, Path]) -> None:
    st, _ = phone
    t = st.profile.thermal
    st.add_heat(t.heat_tau_s, t.full_load_w)
    expected = t.max_c + (t.ambient_c - t.max_c) * math.exp(-1)
    assert st.temperatures().cpu_c == pytest.approx(expected)
    assert st.temperatures().battery_c > t.ambient_c  # follows, with a lag
    assert st.temperatures().battery_c < expected
    st.set_temperature(60.0)
    st.cool(t.cool_tau_s)
    assert st.temperatures().cpu_c == pytest.approx(t.ambient_c + (60 - t.ambient_c) / math.e)
    st.set_temperature(t.throttle_c - 1)
    assert st.throttle_factor() == 1.0
    st.set_temperature(t.max_c)
    assert st.throttle_factor() == pytest.approx(t.max_slowdown)
    factors = [state.throttle_for(st.profile, c) for c in range(20, 100)]
    assert factors == sorted(factors)
    assert max(b - a for a, b in itertools.pairwise(factors)) < 0.05  # smooth
    assert "alarm raised" in st.logcat_text()


def test_a_loaded_tick_leaves_the_heat_to_the_binary(phone: tuple[PhoneState, Path]) -> None:
    """A binary's add_heat already balances its power against the loss to ambient, so the
    daemon's tick must not cool the SoC on top while it runs (the CI flake where a long wall
    gap left a 20-step run no warmer than ambient)."""
    st, _ = phone
    st.set_temperature(60.0)
    st.cool(st.profile.thermal.cool_tau_s, loaded=True)
    assert st.temperatures().cpu_c == pytest.approx(60.0)
    st.cool(st.profile.thermal.cool_tau_s, loaded=False)
    assert st.temperatures().cpu_c < 60.0


def test_tick_cools_in_simulated_time(phone: tuple[PhoneState, Path]) -> None:
    st, root = phone
    t = st.profile.thermal
    st.set_temperature(60.0)
    st.tick(root, 1000.0)
    st.tick(root, 1000.0 + t.cool_tau_s * TIME_SCALE)  # one cooling time constant later
    assert st.temperatures().cpu_c == pytest.approx(t.ambient_c + (60 - t.ambient_c) / math.e)


def test_tick_renders_kernel_files(phone: tuple[PhoneState, Path]) -> None:
    st, root = phone
    st.set_temperature(st.profile.thermal.max_c)
    st.register_process(os.getpid(), "sdxl_pipeline_run", 1000, 1000, 9.0)
    st.tick(root, 1000.0)
    st.tick(root, 1001.0)  # 100 simulated seconds under load
    zones = sorted((root / "sys/class/thermal").glob("thermal_zone*"))
    types = [(z / "type").read_text().strip() for z in zones]
    assert len(zones) >= 6 and "xo-therm" in types and "battery" in types
    cpu_zone = zones[types.index("cpu-1-0-0")]
    assert int((cpu_zone / "temp").read_text()) > 60_000  # millidegrees
    battery = root / "sys/class/power_supply/battery"
    assert 200 < int((battery / "temp").read_text()) < 900  # tenths of a degree
    assert 0 <= int((battery / "capacity").read_text()) <= 100
    assert (battery / "status").read_text().strip() == "Discharging"
    cpu7 = root / "sys/devices/system/cpu/cpu7/cpufreq"
    cluster = st.profile.cpu_clusters[-1]
    assert int((cpu7 / "cpuinfo_max_freq").read_text()) == cluster.max_khz
    assert int((cpu7 / "scaling_max_freq").read_text()) < cluster.max_khz  # throttled
    residency = dict(line.split() for line in (cpu7 / "stats/time_in_state").read_text()
                     .splitlines())
    assert sum(int(v) for v in residency.values()) >= 100 * 100 - 1  # clock ticks
    assert (root / "sys/devices/system/cpu/online").read_text() == "0-7\n"
    assert "temperature: " in (st.ctl / state.BATTERY_DUMP_FILE).read_text()


def test_logcat_threadtime_format_and_clear(phone: tuple[PhoneState, Path]) -> None:
    st, _ = phone
    st.logcat_append("lowmemorykiller", "I", "Kill 'x' (1), uid 2000", 587)
    last = st.logcat_text().splitlines()[-1]
    assert re.fullmatch(r"\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} +587 +587 I lowmemorykiller: "
                        r"Kill 'x' \(1\), uid 2000", last)
    st.logcat_append("adbd", "W", "short", 612, 613)
    assert st.logcat_text().splitlines()[-1].endswith("  612   613 W adbd    : short")
    st.logcat_clear()
    assert st.logcat_text() == ""
