"""Doctor's checks on synthetic facts: one finding per problem, each with a hint."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.device.adb import free_port
from harness.device.facts import DeviceFacts
from harness.farm.doctor import (
    HOT_CELSIUS,
    LOW_BATTERY_PERCENT,
    LOW_SPACE_KB,
    Level,
    check_device,
    check_farm,
)
from harness.farm.inventory import (
    SIM_SERVER_NAME,
    DeviceSpec,
    Farm,
    FarmConfig,
    FarmDevice,
    ServerSpec,
)
from harness.farm.lease import Lease

LOCAL = ServerSpec("desk", "127.0.0.1", 5037)
HEALTHY = DeviceFacts("S1", model="SM-S928B", soc_model="SM8650", android_release="14",
                      mem_total_kb=15_000_000, battery_level=80, battery_temp_c=30.0,
                      data_free_kb=50 * 1024 * 1024)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))  # leases live there


def phone(serial: str = "S1", state: str = "device", facts: DeviceFacts | None = HEALTHY,
          excluded: str | None = None, error: str | None = None) -> FarmDevice:
    return FarmDevice(serial, LOCAL, state, DeviceSpec(), facts, excluded, error)


def test_a_healthy_phone_is_one_ok_line() -> None:
    [only] = check_device(phone())
    assert (only.level, only.message) == (Level.OK, "SM-S928B SM8650, 16 GB, Android 14")


@pytest.mark.parametrize(("item", "level", "text", "hint"), [
    (phone(excluded="cracked screen"), Level.INFO, "excluded: cracked screen", ""),
    (phone(state="unauthorized"), Level.ERROR, "unauthorized", "USB debugging prompt"),
    (phone(state="offline"), Level.ERROR, "state is offline", "adb reconnect"),
    (phone(facts=None, error="adb error: closed"), Level.ERROR,
     "cannot read facts: adb error: closed", "getprop"),
])
def test_a_phone_that_cannot_be_used_gets_one_finding(item: FarmDevice, level: Level, text: str,
                                                      hint: str) -> None:
    [only] = check_device(item)
    assert (only.level, only.message) == (level, text) and hint in only.hint


def test_battery_heat_and_space_warnings_at_their_thresholds() -> None:
    edge = replace(HEALTHY, battery_level=LOW_BATTERY_PERCENT, battery_temp_c=HOT_CELSIUS,
                   data_free_kb=LOW_SPACE_KB)
    assert [f.level for f in check_device(phone(facts=edge))] == [Level.OK]
    bad = replace(HEALTHY, battery_level=LOW_BATTERY_PERCENT - 1, battery_temp_c=30.0,
                  thermal_c={"cpu-1-0": HOT_CELSIUS + 5.5}, data_free_kb=LOW_SPACE_KB - 1)
    findings = check_device(phone(facts=bad))
    assert [(f.level, f.message) for f in findings[1:]] == [
        (Level.WARN, "battery at 19%"), (Level.WARN, "hot: 45.5 °C"),
        (Level.WARN, "only 4.0 GB free on /data")]
    assert all(f.hint for f in findings[1:])
    unknown = replace(HEALTHY, battery_level=None, battery_temp_c=None, data_free_kb=None)
    assert [f.level for f in check_device(phone(facts=unknown))] == [Level.OK]


def test_a_leased_phone_says_by_whom() -> None:
    with Lease("S1", "nightly bench"):
        findings = check_device(phone())
    assert findings[-1].level == Level.INFO and "leased by" in findings[-1].message
    assert "nightly bench" in findings[-1].message
    assert len(check_device(phone())) == 1  # released


class Listening:
    """A loopback port that accepts connections (an adb server, as far as alive() sees)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])


@pytest.fixture
def listening() -> Iterator[Listening]:
    server = Listening()
    yield server
    server.sock.close()


class SyntheticFarm(Farm):
    """A farm whose phones are given, not discovered (servers are still probed)."""

    def __init__(self, config: FarmConfig, phones: list[FarmDevice]) -> None:
        super().__init__(config)
        self.phones = phones

    def discover(self, with_facts: bool = True) -> list[FarmDevice]:
        return list(self.phones)


def test_check_farm_servers(listening: Listening) -> None:
    dead = free_port()
    config = FarmConfig(servers=(ServerSpec("desk", "127.0.0.1", listening.port),
                                 ServerSpec("lab2", "127.0.0.1", dead),
                                 ServerSpec(SIM_SERVER_NAME, "127.0.0.1", dead)),
                        include_sim=False, source="/etc/farm.yaml")
    # (the synthetic phone has no adb device to look for orphans or temporaries on)
    findings = [f for f in check_farm(SyntheticFarm(config, [phone()]))
                if not f.message.startswith(("cannot look for orphaned runs",
                                             "cannot look for harness temporaries"))]
    assert [(f.level, f.subject) for f in findings] == [
        (Level.OK, "desk"), (Level.ERROR, "lab2"), (Level.ERROR, SIM_SERVER_NAME),
        (Level.OK, "S1")]
    assert f"start it: adb -P {dead} start-server" == findings[1].hint
    assert "harness sim up" in findings[2].hint  # it restarts the farm's server, same phones


def test_check_farm_without_a_farm_file_only_notes_a_missing_local_server() -> None:
    config = FarmConfig(servers=(ServerSpec("local", "127.0.0.1", free_port()),),
                        include_sim=False)
    findings = check_farm(SyntheticFarm(config, []))
    assert [f.level for f in findings] == [Level.INFO, Level.WARN]
    assert findings[1].message == "no phones found"


def test_check_farm_with_no_servers_and_a_selector() -> None:
    config = FarmConfig(servers=(), include_sim=False, source="farm.yaml")
    phones = [phone("S1"), phone("S2", state="offline")]
    findings = check_farm(SyntheticFarm(config, phones), selector="S2")
    assert [(f.level, f.subject) for f in findings] == [(Level.ERROR, "farm"),
                                                        (Level.ERROR, "S2")]
    assert "farm.yaml" in findings[0].hint
