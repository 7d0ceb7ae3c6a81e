"""A farm of two adb servers, each with its own virtual phones, named by one farm file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.device.facts import Requirements
from harness.farm.inventory import Farm, load_farm
from harness.sim.farm import Farm as SimFarmCore
from tests.helpers import harness
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def second_farm(tmp_path_factory: pytest.TempPathFactory, sim_farm: SimFarm) -> Iterator[SimFarm]:
    core = SimFarmCore(tmp_path_factory.mktemp("second-farm"))
    core.up(["sm8550-12g", "sm8475-8g"], time_scale=0.005)
    try:
        yield SimFarm(core)
    finally:
        core.down()


@pytest.fixture()
def farm_file(tmp_path: Path, sim_farm: SimFarm, second_farm: SimFarm) -> Path:
    a = sim_farm.phone("sm8650-16g").adb_serial
    b = second_farm.phone("sm8475-8g").adb_serial
    path = tmp_path / "farm.yaml"
    path.write_text(f"""
servers:
  - {{name: desk, port: {sim_farm.state.adb_port}}}
  - {{name: lab2, port: {second_farm.state.adb_port}}}
sim: false
devices:
  "{a}": {{nickname: flagship, tags: [nightly]}}
  "{b}": {{nickname: oldie}}
exclude:
  "{sim_farm.phone('sm8475-8g').adb_serial}": battery swollen
""")
    return path


def test_discovery_across_two_servers(farm_file: Path, sim_farm: SimFarm,
                                      second_farm: SimFarm) -> None:
    farm = Farm(load_farm(farm_file))
    found = {d.serial: d for d in farm.discover()}
    assert {p.adb_serial for p in sim_farm.phones} <= set(found)
    assert {p.adb_serial for p in second_farm.phones} <= set(found)
    assert found[second_farm.phone("sm8475-8g").adb_serial].server.name == "lab2"
    excluded = found[sim_farm.phone("sm8475-8g").adb_serial]
    assert excluded.excluded == "battery swollen" and excluded.facts is None
    flagship = found[sim_farm.phone("sm8650-16g").adb_serial]
    assert flagship.facts is not None and flagship.facts.marketed_ram_gb == 16
    assert {"nightly", "sm8650", "ram16", "pineapple", "android14"} <= flagship.tags


def test_selection_by_nickname_tag_and_requirement(farm_file: Path, sim_farm: SimFarm,
                                                   second_farm: SimFarm) -> None:
    farm = Farm(load_farm(farm_file))
    pool = farm.discover()
    assert [d.serial for d in farm.select("oldie", None, pool).chosen] == [
        second_farm.phone("sm8475-8g").adb_serial]
    ram16 = farm.select("tag:ram16", None, pool).chosen
    assert {d.serial for d in ram16} == {sim_farm.phone("sm8650-16g").adb_serial}
    sel = farm.select("tag:sm8550,sm8475", Requirements(min_ram_gb=12), pool)
    assert {d.serial for d in sel.chosen} == {p.adb_serial for p in sim_farm.phones + second_farm.phones
                                              if p.profile == "sm8550-12g"}
    assert "needs 12 GB of RAM, the phone has 8 GB" in " | ".join(sel.explain())
    excluded = sim_farm.phone("sm8475-8g").adb_serial
    sel = farm.select(excluded, None, pool)
    assert not sel.chosen
    assert sel.explain() == [f"{excluded}: excluded in the farm file: battery swollen"]


def test_devices_and_doctor_commands(farm_file: Path, tmp_path: Path) -> None:
    result = harness("devices", "--farm", str(farm_file), "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["devices"]
    nick = {r["nickname"]: r for r in rows if r["nickname"]}
    assert nick["flagship"]["facts"]["soc_model"] == "SM8650"
    table = harness("devices", "--farm", str(farm_file), home=tmp_path)
    assert "flagship" in table.stdout and "lab2" in table.stdout
    doctor = harness("doctor", "--farm", str(farm_file), "--json", home=tmp_path)
    findings = json.loads(doctor.stdout)
    assert any(f["level"] == "info" and "battery swollen" in f["message"] for f in findings)
    assert doctor.returncode == 0, doctor.stdout


def test_doctor_flags_a_dead_server(tmp_path: Path) -> None:
    from harness.device.adb import free_port

    path = tmp_path / "farm.yaml"
    path.write_text(f"servers:\n  - {{name: gone, port: {free_port()}}}\nsim: false\n")
    doctor = harness("doctor", "--farm", str(path), home=tmp_path)
    assert doctor.returncode == 3
    assert "no adb server" in doctor.stdout and "gone" in doctor.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["devices", "--farm", "/nonexistent/farm.yaml"], "no such farm file"),
        (["doctor", "--device", "nosuchphone"], "no phone 'nosuchphone'"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text("servers: []\nsim: false\n")
    if "--farm" not in args:
        args = [*args, "--farm", str(path)]
    result = harness(*args, home=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_farm_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text("servers:\n  - port: 5037\n    hostt: x\n")
    result = harness("devices", "--farm", str(path), home=tmp_path)
    assert result.returncode == 2
    assert f"{path}:3: unknown key 'hostt'" in result.stderr
