"""The farm file: parsing, clear errors with file:line, tag expressions, leases."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.device.facts import DeviceFacts
from harness.errors import ConfigError, UsageError
from harness.farm.inventory import (
    DeviceSpec,
    Farm,
    FarmConfig,
    FarmDevice,
    ServerSpec,
    ThermalLimits,
    load_farm,
    local_server_spec,
    match_tags,
)
from harness.farm.lease import Lease, LeaseBusy, holder_of


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "farm.yaml"
    path.write_text(text)
    return path


def test_full_farm_file(tmp_path: Path) -> None:
    cfg = load_farm(write(tmp_path, """
servers:
  - {name: desk, port: 5037}
  - name: lab2
    host: 127.0.0.1
    port: 15037
sim: false
devices:
  R5CW30: {nickname: s24, tags: [Nightly, ram16]}
  ABC: null
exclude:
  BROKEN1: cracked screen
"""))
    assert [s.name for s in cfg.servers] == ["desk", "lab2"]
    assert cfg.servers[1].port == 15037
    assert cfg.devices["R5CW30"].nickname == "s24"
    assert cfg.devices["R5CW30"].tags == ("nightly", "ram16")
    assert cfg.exclude == {"BROKEN1": "cracked screen"}
    assert cfg.include_sim is False


def test_missing_default_file_means_local_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    cfg = load_farm(None)
    assert [(s.host, s.port) for s in cfg.servers] == [("127.0.0.1", 5037)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("servers: [\n  {port: 1\n", r"farm.yaml:3"),
        ("servers:\n  - port: 5037\n    hots: x\n", r"farm.yaml:3: unknown key 'hots'.*did you mean 'host'"),
        ("servers:\n  - port: 99999\n", r"farm.yaml:2: port must be 1-65535"),
        ("devices:\n  X:\n    nick: a\n", r"farm.yaml:3: unknown key 'nick'.*did you mean 'nickname'"),
        ("devicez: {}\n", r"farm.yaml:1: unknown key 'devicez'.*did you mean 'devices'"),
        ("devices:\n  A: {nickname: x}\n  B: {nickname: x}\n", r"nickname used twice: x"),
        ("- a\n- b\n", r"farm.yaml:1: a farm file is a mapping"),
        ("sim: maybe\n", r"farm.yaml:1: sim must be true or false"),
        ("devices:\n  A: {tags: ram16}\n", r"tags must be a list"),
        ("servers:\n  - {name: sim}\n", r"not 'sim'"),
        ("a: 1\na: 2\n", r"farm.yaml:2: duplicate key 'a'"),
    ],
)
def test_malformed_farm_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_farm(write(tmp_path, text))


def test_explicit_missing_farm_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such farm file"):
        load_farm(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("expr", "expected"),
    [("sm8650", True), ("sm8550", False), ("sm8650+ram16", True), ("sm8650+ram12", False),
     ("sm8550,ram16", True), ("!sm8475", True), ("sm8650+!nightly", False),
     (" SM8650 + ! nightly ", False), ("ram16 , sm8550", True)],
)
def test_tag_expressions(expr: str, expected: bool) -> None:
    assert match_tags(expr, {"sm8650", "ram16", "nightly"}) is expected


@pytest.mark.parametrize("expr", ["", "+,!", "!", "a,,b", "a+", "+a", "sm 8650", "$(reboot)",
                                  "a;b", "!!a", "-x"])
def test_malformed_tag_expressions_are_refused(expr: str) -> None:
    # `tag:+,!` used to match every phone: "!" negated the empty word.
    with pytest.raises(UsageError, match="is not a tag"):
        match_tags(expr, {"sm8650"})


def _dev(serial: str, soc: str, ram_kb: int, state: str = "device", nick: str | None = None) -> FarmDevice:
    facts = DeviceFacts(serial, soc_model=soc, mem_total_kb=ram_kb, android_release="14")
    return FarmDevice(serial, ServerSpec("s"), state, DeviceSpec(nick), facts)


def test_selection_explains_rejections() -> None:
    from harness.device.facts import Requirements

    pool = [_dev("A", "SM8650", 15_000_000, nick="big"), _dev("B", "SM8475", 7_500_000),
            _dev("C", "SM8650", 15_000_000, state="offline")]
    farm = Farm()
    sel = farm.select("tag:android14", Requirements(min_ram_gb=16, socs=("SM8650",)), pool)
    assert [d.serial for d in sel.chosen] == ["A"]
    why = dict((d.serial, reason) for d, reason in sel.rejected)
    assert "needs 16 GB of RAM, the phone has 8 GB" in why["B"]
    assert "needs SoC SM8650, the phone has SM8475" in why["B"]
    assert sel.chosen == farm.select("big", None, pool).chosen
    with pytest.raises(Exception, match="no phone 'bigg'.*big"):
        farm.select("bigg", None, pool)


def test_lease_is_exclusive_across_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from harness.farm.lease import Lease\n"
         "with Lease('PHONE1', 'nightly bench'):\n"
         "    print('held', flush=True); time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True, env={**__import__('os').environ, "HARNESS_HOME": str(tmp_path)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseBusy, match="PHONE1: in use by pid .*nightly bench"):
            Lease("PHONE1", "engineer run").acquire()
        info = holder_of("PHONE1")
        assert info is not None and info.pid == holder.pid
    finally:
        holder.kill()  # the holder dies: its lease must expire with it
        holder.wait()
    # No waiting allowed: the kernel dropped the dead holder's flock when it was reaped.
    with Lease("PHONE1", "engineer run", wait_s=0):
        assert holder_of("PHONE1") is not None
    assert holder_of("PHONE1") is None


@pytest.mark.parametrize(("env", "host", "port"), [
    ({}, "127.0.0.1", 5037),
    ({"ANDROID_ADB_SERVER_PORT": "5099"}, "127.0.0.1", 5099),
    ({"ANDROID_ADB_SERVER_ADDRESS": "10.0.0.2", "ANDROID_ADB_SERVER_PORT": "5038"},
     "10.0.0.2", 5038),
    ({"ADB_SERVER_SOCKET": "tcp:lab:6000", "ANDROID_ADB_SERVER_PORT": "5099"}, "lab", 6000),
    ({"ADB_SERVER_SOCKET": "tcp:6001"}, "127.0.0.1", 6001),
])
def test_local_server_is_found_as_adb_finds_it(env: dict[str, str], host: str,
                                                port: int) -> None:
    spec = local_server_spec(env)
    assert (spec.name, spec.host, spec.port) == ("local", host, port)


@pytest.mark.parametrize("env", [{"ADB_SERVER_SOCKET": "localfilesystem:/x"},
                                 {"ADB_SERVER_SOCKET": "tcp:host:port"},
                                 {"ANDROID_ADB_SERVER_PORT": "99999"}])
def test_bad_adb_environment_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        local_server_spec(env)


def test_default_farm_uses_the_adb_environment(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "5123")
    assert load_farm(None).servers[0].port in (5037, 5123)  # a user's farm.yaml may exist
    assert load_farm(write(tmp_path, "sim: false\n")).servers == (ServerSpec("local", port=5123),)


def test_thermal_limits_per_farm_and_phone(tmp_path: Path) -> None:
    cfg = load_farm(write(tmp_path, """
thermal: {battery_c: 33, cpu_c: 40}
devices:
  HOTPHONE: {thermal: {cpu_c: 45.5}}
"""))
    assert cfg.thermal_limits("OTHER") == ThermalLimits(33.0, 40.0)
    assert cfg.thermal_limits("HOTPHONE") == ThermalLimits(33.0, 45.5)
    assert FarmConfig().thermal_limits("X") == ThermalLimits(35.0, 38.0)
    with pytest.raises(ConfigError, match="farm.yaml:2"):
        load_farm(write(tmp_path, "devices: {}\nthermal: {cpu: 3}\n"))
    with pytest.raises(ConfigError, match="must be a number"):
        load_farm(write(tmp_path, "thermal: {cpu_c: hot}\n"))


def test_current_sign_per_phone(tmp_path: Path) -> None:
    cfg = load_farm(write(tmp_path, """
devices:
  ONCHARGER: {current_sign: discharge-positive}
  PLAIN: {nickname: p}
"""))
    assert cfg.current_sign("ONCHARGER") == "discharge-positive"
    assert cfg.current_sign("PLAIN") == "auto"
    assert cfg.current_sign("UNLISTED") == "auto"
    with pytest.raises(ConfigError, match=r"farm.yaml:2: current_sign must be one of auto, "
                                          r"discharge-negative, discharge-positive, not 'up'"):
        load_farm(write(tmp_path, "devices:\n  X: {current_sign: up}\n"))


def test_discover_names_every_unreachable_server() -> None:
    from harness.device.adb import free_port

    ports = [free_port(), free_port()]
    farm = Farm(FarmConfig(servers=tuple(ServerSpec(f"gone{i}", port=p)
                                         for i, p in enumerate(ports)), include_sim=False))
    assert farm.discover() == []
    assert [(s.name, s.port) for s, _why in farm.unreachable] == [("gone0", ports[0]),
                                                                   ("gone1", ports[1])]
    assert all(why for _s, why in farm.unreachable)


class _CountingFarm(Farm):
    """A farm whose phones are given; records whose facts are read (issue 12)."""

    def __init__(self, pool: list[FarmDevice]) -> None:
        super().__init__()
        self.pool = pool
        self.read: list[str] = []

    def discover(self, with_facts: bool = True) -> list[FarmDevice]:
        for d in self.pool:
            d.facts = None
        if with_facts:
            self._fill_facts(self.pool)
        return list(self.pool)

    def _fill_facts(self, devices: Sequence[FarmDevice]) -> None:
        for d in devices:
            self.read.append(d.serial)
            d.facts = DeviceFacts(d.serial, soc_model="SM8650", mem_total_kb=15_000_000,
                                  android_release="14")


def test_a_named_phone_is_the_only_one_whose_facts_are_read() -> None:
    pool = [_dev(s, "SM8650", 15_000_000) for s in ("A", "B", "C", "D")]
    pool[3].spec = DeviceSpec(nickname="dee")
    farm = _CountingFarm(pool)
    assert [d.serial for d in farm.select("B").chosen] == ["B"]
    assert farm.read == ["B"]
    assert [d.serial for d in farm.select("dee").chosen] == ["D"]
    assert farm.read == ["B", "D"]
    farm.read.clear()
    assert len(farm.select("tag:sm8650").chosen) == 4  # tags come from every phone's facts
    assert sorted(farm.read) == ["A", "B", "C", "D"]


def test_a_device_carries_the_facts_read_that_found_it() -> None:
    item = _dev("S1", "SM8650", 16_000_000)
    farm = Farm(FarmConfig())
    assert item.device(farm)._facts_read is None  # facts of unknown age are not handed on
    item.facts_at = 123.0
    assert item.device(farm)._facts_read == (123.0, item.facts)
