"""The virtual phone's memory pressure, battery electrics and kgsl files."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from harness.sim import devtools, profiles, sensors


def test_psi_rises_under_pressure_and_decays() -> None:
    phone = profiles.load_profile("sm8650-16g")
    assert sensors.stall_share(phone, phone.memtotal_kb // 2) == 0.0
    low = sensors.stall_share(phone, phone.memtotal_kb // 100)
    assert 0 < low <= sensors.PSI_MAX_SOME
    st = sensors.advance_psi(sensors.PsiState(), low, 10.0)
    assert 0 < st.some[2] < st.some[1] < st.some[0] < low  # avg300 slowest
    assert st.full[0] == pytest.approx(st.some[0] * sensors.PSI_FULL_SHARE)
    text = sensors.psi_text(st)
    assert re.fullmatch(r"some avg10=\d+\.\d\d avg60=\d+\.\d\d avg300=\d+\.\d\d total=\d+\n"
                        r"full avg10=\d+\.\d\d avg60=\d+\.\d\d avg300=\d+\.\d\d total=\d+\n",
                        text), text
    later = sensors.advance_psi(st, 0.0, 60.0)
    assert later.some[0] < st.some[0] and later.some_total_us == st.some_total_us


def test_psi_state_round_trips(tmp_path: Path) -> None:
    st = sensors.PsiState((0.1, 0.2, 0.3), (0.01, 0.02, 0.03), 5.0, 1.0)
    sensors.save_psi(tmp_path, st)
    assert sensors.load_psi(tmp_path) == st
    assert sensors.load_psi(tmp_path / "none") == sensors.PsiState()


@pytest.mark.parametrize(("unit", "sign", "scale", "discharge"),
                         [("uA", "negative", 1e6, -1), ("mA", "positive", 1e3, 1)])
def test_battery_current_follows_the_net_power(unit: str, sign: str, scale: float,
                                               discharge: int) -> None:
    phone = dataclasses.replace(profiles.load_profile("sm8650-16g"),
                                battery_current_unit=unit, battery_discharge_sign=sign)
    loaded = sensors.battery_reading(phone, 80, 9.0, 2.5)
    amps = loaded.current_now / scale * discharge
    assert amps * loaded.voltage_now_uv / 1e6 == pytest.approx(6.5, rel=1e-3)
    idle = sensors.battery_reading(phone, 80, 0.0, 2.5)
    assert idle.current_now * discharge < 0  # charging
    assert idle.voltage_now_uv > loaded.voltage_now_uv  # the cell sags under load
    assert sensors.battery_reading(phone, 100, 0.0, 2.5).current_now == 0


def test_gpu_busy_follows_power() -> None:
    assert sensors.gpu_busy_pct(3.0) == 0.0
    assert sensors.gpu_busy_pct(9.0) == sensors.GPU_MAX_BUSY_PCT
    files = sensors.kgsl_files(50.0, 1.6)
    assert files["gpu_busy_percentage"] == "50 %\n"
    assert int(files["gpuclk"]) < sensors.GPU_MAX_HZ  # throttled


@pytest.mark.parametrize(("name", "readable"), [("sm8650-16g", True), ("sm8475-8g", False)])
def test_kernel_files_have_current_and_kgsl(tmp_path: Path, name: str, readable: bool) -> None:
    phone = profiles.load_profile(name)
    view = dataclasses.replace(devtools.KernelView.idle(phone), load_w=9.0, charge_w=2.5,
                               loaded=True)
    devtools.render_kernel_files(tmp_path, phone, view)
    battery = tmp_path / "sys/class/power_supply/battery"
    assert int((battery / "current_now").read_text()) != 0
    busy = tmp_path / "sys/class/kgsl/kgsl-3d0/gpu_busy_percentage"
    assert busy.read_text().startswith("98")
    assert bool(busy.stat().st_mode & 0o004) is readable
