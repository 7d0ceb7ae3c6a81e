"""Device and background runs against virtual phones through the real adb server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from harness.device.background import BackgroundRun
from harness.device.device import AdbEndpoint, Device
from harness.device.errors import CommandTimeout, DeviceError, DeviceNotFound
from harness.sim.farm import Farm as SimFarmCore
from harness.sim.profiles import load_profile
from tests.helpers import count_lines_starting, wait_for
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e


def sim_device(sim_farm: SimFarm, profile: str = "sm8650-16g") -> Device:
    record = sim_farm.phone(profile)
    farm = sim_farm.farm
    endpoint = AdbEndpoint("127.0.0.1", sim_farm.state.adb_port, farm.restart_adb, "sim")
    return Device(record.adb_serial, endpoint, recover_timeout_s=30)


def phone_count(device: Device, tag: str) -> int:
    return count_lines_starting(device.run("ps -eo args", timeout=30).out, tag)


def test_run_returns_typed_results(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm)
    result = device.run("echo out; echo err >&2; exit 5")
    assert (result.exit_code, result.out, result.err) == (5, "out\n", "err\n")
    assert result.duration_s > 0
    assert result.serial == device.serial
    with pytest.raises(DeviceError, match=f"{device.serial}: .*exited with 5: err"):
        result.check()


@pytest.mark.parametrize(
    "value",
    ["$(touch /data/local/tmp/pwned)", "`touch /data/local/tmp/pwned`",
     "; touch /data/local/tmp/pwned", "it's \"quoted\"", "two\nlines; touch /data/local/tmp/pwned",
     "$HOME ${X:-y} * ~"],
)
def test_hostile_values_arrive_verbatim_on_the_phone(sim_farm: SimFarm, value: str) -> None:
    device = sim_device(sim_farm)
    device.run(["rm", "-f", "/data/local/tmp/pwned"], check=True)
    device.run(["mkdir", "-p", f"/data/local/tmp/dir {value[:10].replace('/', '_')}"],
               check=True)
    result = device.run(["printf", "%s|", value], env={"HOSTILE": value},
                        cwd=f"/data/local/tmp/dir {value[:10].replace('/', '_')}", check=True)
    assert result.out == f"{value}|"
    env_back = device.run('printf "%s" "$HOSTILE"', env={"HOSTILE": value}, check=True)
    assert env_back.out == value
    assert device.run(["test", "-e", "/data/local/tmp/pwned"]).exit_code == 1


def test_streaming_callback_gets_lines_as_they_come(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm)
    go = "/data/local/tmp/stream-go"
    device.run(["rm", "-f", go], check=True)
    seen: list[tuple[str, str]] = []

    def on_line(name: str, line: str) -> None:
        seen.append((name, line))
        if line == "line1":  # the command waits for this file: only a live line releases it
            device.run(["touch", go], check=True)

    # Bounded (600 x 50 ms), so that lines delivered only at the end fail, not hang.
    result = device.run(
        f"echo line1; echo e1 >&2; i=0; while [ ! -e {go} ] && [ $i -lt 600 ]; do "
        f"sleep 0.05; i=$((i+1)); done; [ -e {go} ] && echo line2 || echo not-released",
        on_output=on_line, timeout=120)
    assert result.out == "line1\nline2\n", "lines must arrive while the command runs"
    assert [s[1] for s in seen if s[0] == "stdout"] == ["line1", "line2"]
    assert [s[1] for s in seen if s[0] == "stderr"] == ["e1"]


def test_timeout_kills_the_command_on_the_phone(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm)
    tag = "sleep 765432"
    with pytest.raises(CommandTimeout, match="killed on the phone"):
        device.run(f"sh -c '{tag}; echo never' & {tag}", timeout=1.0)
    wait_for(lambda: phone_count(device, tag) == 0)


def test_facts_match_the_profile(sim_farm: SimFarm) -> None:
    for record in sim_farm.phones:
        profile = load_profile(record.profile)
        endpoint = AdbEndpoint("127.0.0.1", sim_farm.state.adb_port)
        facts = Device(record.adb_serial, endpoint).facts()
        assert facts.soc_model == profile.soc_model
        assert facts.model == profile.model
        assert facts.board_platform == profile.board_platform
        assert facts.sdk == profile.sdk
        assert facts.marketed_ram_gb == profile.ram_gb
        assert facts.mem_total_kb == profile.memtotal_kb
        assert facts.battery_level is not None and 0 <= facts.battery_level <= 100
        assert facts.thermal_c and facts.battery_temp_c is not None
        assert facts.data_free_kb and facts.data_free_kb > 0
        assert facts.cpus and facts.cpus[0].max_khz
        assert facts.cpus[0].time_in_state, "time_in_state is readable on virtual phones"
        assert facts.rooted is profile.rooted
        temps = Device(record.adb_serial, endpoint).temps()  # what a run reads after
        assert set(temps.thermal_c) == set(facts.thermal_c)
        assert temps.battery_temp_c is not None and temps.battery_level is not None
        assert temps.model == "" and temps.cpus == [], "temperatures and battery only"


def test_unknown_serial_is_a_typed_error(sim_farm: SimFarm) -> None:
    device = Device("127.0.0.1:1", AdbEndpoint("127.0.0.1", sim_farm.state.adb_port),
                    recover_timeout_s=1)
    with pytest.raises(DeviceNotFound, match="127.0.0.1:1: not found"):
        device.run("true")


def test_background_run_completes_with_output_and_status(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm)
    run = BackgroundRun.start(device, ["sh", "-c", "echo hello; echo oops >&2; exit 4"],
                              env={"X": "1"}, cwd="/data/local/tmp", name="t")
    outcome = run.attach(timeout=30)
    assert outcome.exit_code == 4
    assert outcome.stdout == b"hello\n" and outcome.stderr == b"oops\n"
    # A second attach (e.g. from another process after a crash) sees the same result.
    again = BackgroundRun(device, run.run_id).attach(timeout=30)
    assert (again.exit_code, again.stdout) == (4, b"hello\n")
    run.cleanup()


def test_background_run_survives_killing_the_adb_server(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm)
    run = BackgroundRun.start(device, ["sh", "-c",
                                       "for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.3; done"],
                              name="survive-server")
    old_pid = sim_farm.state.adb_pid
    os.kill(old_pid, signal.SIGKILL)
    outcome = run.attach(timeout=60)
    assert outcome.exit_code == 0
    assert outcome.stdout.decode().split() == [f"tick{i}" for i in range(1, 7)]
    assert outcome.reconnects >= 1
    assert sim_farm.state.adb_pid != old_pid, "the farm's server was restarted"
    run.cleanup()


def test_background_run_survives_a_dropped_connection(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm)
    record = sim_farm.phone("sm8650-16g")
    run = BackgroundRun.start(device, ["sh", "-c",
                                       "for i in 1 2 3 4 5; do echo t$i; sleep 0.3; done"],
                              name="survive-drop")
    lines: list[str] = []
    sim_farm.farm.drop_connections(record.serial)
    outcome = run.attach(on_output=lambda _n, line: lines.append(line), timeout=60)
    assert outcome.exit_code == 0
    assert lines == [f"t{i}" for i in range(1, 6)]
    run.cleanup()


def test_background_timeout_kills_the_process_group_on_the_phone(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm)
    tag = "sleep 654321"
    run = BackgroundRun.start(device, ["sh", "-c", f"{tag} & {tag}; echo never"], name="to")
    wait_for(lambda: phone_count(device, tag) == 2)
    outcome = run.attach(timeout=0.5)
    assert outcome.timed_out and outcome.killed
    wait_for(lambda: phone_count(device, tag) == 0)
    run.cleanup()


def test_explicit_kill_of_a_background_run(sim_farm: SimFarm) -> None:
    device = sim_device(sim_farm)
    tag = "sleep 543210"
    run = BackgroundRun.start(device, ["sh", "-c", tag], name="kill")
    wait_for(lambda: phone_count(device, tag) == 1)
    run.kill()
    outcome = run.attach(timeout=30)
    assert outcome.exit_code in (None, 137)
    wait_for(lambda: phone_count(device, tag) == 0)
    run.cleanup()


def test_farm_core_restart_is_idempotent(sim_farm: SimFarm, tmp_path: Path) -> None:
    core: SimFarmCore = sim_farm.farm
    pid = sim_farm.state.adb_pid
    core.restart_adb()  # alive: nothing to do
    assert sim_farm.state.adb_pid == pid
