"""The virtual phone as the real adb binary and adbutils see it: connect, list, shell, sync."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from harness.assets.hashcache import sha256_file as sha256
from harness.sim.farm import parse_devices
from harness.sim.profiles import load_profile
from harness.sim.protocol import Command, Message
from tests.helpers import count_lines_starting, wait_for
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e



def test_devices_lists_every_phone_with_its_identity(sim_farm: SimFarm) -> None:
    out = sim_farm.adb("devices", "-l", check=True).stdout.decode()
    for record in sim_farm.phones:
        profile = load_profile(record.profile)
        line = next(ln for ln in out.splitlines() if ln.startswith(record.adb_serial))
        assert " device " in line
        assert f"model:{re.sub(r'[^A-Za-z0-9.]', '_', profile.model)}" in line
        assert f"device:{profile.device}" in line
    assert set(parse_devices(out)) >= {r.adb_serial for r in sim_farm.phones}


def test_adb_connect_again_is_idempotent(sim_farm: SimFarm) -> None:
    record = sim_farm.phones[0]
    out = sim_farm.adb("connect", record.adb_serial, check=True).stdout.decode()
    assert "already connected" in out


def test_getprop_through_adb_and_adbutils(sim_farm: SimFarm) -> None:
    for record in sim_farm.phones:
        profile = load_profile(record.profile)
        soc = sim_farm.adb("-s", record.adb_serial, "shell", "getprop", "ro.soc.model")
        assert soc.stdout.decode().strip() == profile.soc_model
        device = sim_farm.device(record)
        assert device.getprop("ro.board.platform") == profile.board_platform
        assert device.getprop("ro.build.version.sdk") == str(profile.sdk)
        assert device.getprop("ro.serialno") == record.serial
        everything = device.shell("getprop")
        assert f"[ro.soc.model]: [{profile.soc_model}]" in everything


def test_shell_v2_exit_codes_and_separate_stderr(sim_farm: SimFarm) -> None:
    serial = sim_farm.phones[0].adb_serial
    result = sim_farm.adb("-s", serial, "shell", "echo out; echo err >&2; exit 7")
    assert result.returncode == 7
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
    ret = sim_farm.device(sim_farm.phones[0]).shell2("echo hi; echo e >&2; exit 3", v2=True)
    assert ret.returncode == 3
    assert (ret.stdout, ret.stderr) == ("hi\n", "e\n")


def test_death_by_signal_reports_128_plus_n(sim_farm: SimFarm) -> None:
    serial = sim_farm.phones[0].adb_serial
    assert sim_farm.adb("-s", serial, "shell", "kill -9 $$").returncode == 137
    assert sim_farm.adb("-s", serial, "shell", "kill -15 $$").returncode == 143


def test_shell_stdin_reaches_the_command(sim_farm: SimFarm) -> None:
    serial = sim_farm.phones[0].adb_serial
    data = os.urandom(300_000)
    result = sim_farm.adb("-s", serial, "shell", "cat | sha256sum", input=data)
    assert result.returncode == 0
    assert result.stdout.decode().split()[0] == hashlib.sha256(data).hexdigest()


def test_shell_v1_and_exec_out(sim_farm: SimFarm) -> None:
    record = sim_farm.phones[0]
    device = sim_farm.device(record)
    # adbutils' shell() uses the v1 service: stdout and stderr merged, no exit status.
    assert sorted(device.shell("echo a; echo b >&2").split()) == ["a", "b"]
    blob = bytes(range(256)) * 64
    device.sync.push(blob, "/data/local/tmp/blob.bin")
    out = sim_farm.adb("-s", record.adb_serial, "exec-out", "cat /data/local/tmp/blob.bin")
    assert out.stdout == blob


def test_interactive_pty_shell(sim_farm: SimFarm) -> None:
    serial = sim_farm.phones[0].adb_serial
    result = sim_farm.adb("-s", serial, "shell", "-t", "-t", "tty && echo ok", timeout=30)
    assert result.returncode == 0
    assert b"/dev/pts/" in result.stdout
    assert b"ok" in result.stdout


def test_push_pull_200_mib_both_ways(sim_farm: SimFarm, tmp_path: Path) -> None:
    record = sim_farm.phones[0]
    src = tmp_path / "big.bin"
    with src.open("wb") as fh:
        for _ in range(200):
            fh.write(os.urandom(1 << 20))
    want = sha256(src)
    remote = "/data/local/tmp/big.bin"
    sim_farm.adb("-s", record.adb_serial, "push", str(src), remote, check=True)
    on_phone = sim_farm.adb("-s", record.adb_serial, "shell", f"sha256sum {remote}")
    assert on_phone.stdout.decode().split()[0] == want
    back = tmp_path / "back.bin"
    sim_farm.adb("-s", record.adb_serial, "pull", remote, str(back), check=True)
    assert sha256(back) == want
    # The same through adbutils' own sync client.
    device = sim_farm.device(record)
    device.sync.push(src, "/data/local/tmp/big2.bin")
    back2 = tmp_path / "back2.bin"
    device.sync.pull("/data/local/tmp/big2.bin", back2)
    assert sha256(back2) == want
    sim_farm.adb("-s", record.adb_serial, "shell", "rm /data/local/tmp/big.bin "
                 "/data/local/tmp/big2.bin", check=True)


def test_push_a_500_file_tree(sim_farm: SimFarm, tmp_path: Path) -> None:
    record = sim_farm.phones[1]
    tree = tmp_path / "tree"
    digests = {}
    for i in range(500):
        path = tree / f"d{i % 7}" / f"sub{i % 3}" / f"f{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(i * 13 % 5000)
        path.write_bytes(data)
        digests[str(path.relative_to(tree))] = hashlib.sha256(data).hexdigest()
    (tree / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (tree / "run.sh").chmod(0o755)
    sim_farm.adb("-s", record.adb_serial, "push", str(tree), "/data/local/tmp/", check=True)
    listing = sim_farm.adb("-s", record.adb_serial, "shell",
                           "cd /data/local/tmp/tree && find . -type f -name '*.bin' "
                           "-exec sha256sum {} +").stdout.decode()
    got = {line.split()[1][2:]: line.split()[0] for line in listing.splitlines()}
    assert got == digests
    ran = sim_farm.adb("-s", record.adb_serial, "shell", "/data/local/tmp/tree/run.sh")
    assert ran.stdout == b"ran\n", "file mode (executable bit) must survive the push"
    # LIST through adbutils sees the pushed directories.
    names = {e.path for e in sim_farm.device(record).sync.list("/data/local/tmp/tree")}
    assert {f"d{i}" for i in range(7)} <= names


def test_push_modes_owner_and_mtime_follow_aosp_adbd(sim_farm: SimFarm, tmp_path: Path) -> None:
    """AOSP packages/modules/adb daemon/file_sync_service.cpp, send_impl: "Copy user
    permission bits to group and other permissions" (0644 -> 0666, 0755 -> 0777); the file
    is created by adbd, which runs as the shell user; the DONE message's mtime is applied."""
    record = sim_farm.phone("sm8650-16g")
    want = {"rw.txt": (0o644, "666"), "run.sh": (0o755, "777"), "secret": (0o600, "666"),
            "odd": (0o604, "666"), "grp": (0o070, "77")}
    src = tmp_path / "modes"
    src.mkdir()
    for n, (name, (mode, _)) in enumerate(want.items()):
        path = src / name
        path.write_text(f"{name}\n")
        path.chmod(mode)
        os.utime(path, (1_600_000_000 + n, 1_600_000_000 + n))
    dest = "/data/local/tmp/modes"
    sim_farm.adb("-s", record.adb_serial, "shell", f"rm -rf {dest}", check=True)
    sim_farm.adb("-s", record.adb_serial, "push", str(src), "/data/local/tmp/", check=True)
    sim_farm.device(record).sync.push(src / "rw.txt", f"{dest}/via-adbutils", mode=0o644)
    out = sim_farm.adb("-s", record.adb_serial, "shell",
                       f"cd {dest} && stat -c '%n %a %u:%g %Y' *").stdout.decode()
    got = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    for n, (name, (_, phone_mode)) in enumerate(want.items()):
        assert got[name][0] == phone_mode, f"{name}: {got[name]}"
        assert got[name][2] == str(1_600_000_000 + n), "the DONE message's mtime is applied"
    assert got["via-adbutils"][0] == "666"
    if sim_farm.state.mode in ("root", "userns"):
        assert {v[1] for v in got.values()} == {"2000:2000"}, "owned by adbd's user, shell"
        made = sim_farm.adb("-s", record.adb_serial, "shell",
                            f"stat -c '%u:%g' {dest}").stdout.decode().strip()
        assert made == "2000:2000"


def test_the_shell_is_a_phones(sim_farm: SimFarm) -> None:
    """mksh as /system/bin/sh, toybox's applets, a phone's PATH, uid 2000 (not rooted)."""
    from harness.sim import userland

    tools = userland.detect()
    if not tools.complete:
        assert sim_farm.state.userland.startswith("host tools")
        pytest.skip("toybox/mksh/original-awk are not installed: host-tools fallback")
    assert sim_farm.state.userland.startswith("android")
    serial = sim_farm.phone("sm8650-16g").adb_serial

    def sh(command: str) -> subprocess.CompletedProcess[bytes]:
        return sim_farm.adb("-s", serial, "shell", command)

    assert b"MIRBSD KSH" in sh("echo $KSH_VERSION").stdout
    if sim_farm.state.mode != "rewrite":
        assert sh("echo $PATH").stdout.decode().strip() == userland.shell_path()
    assert sh("readlink /system/bin/ls").stdout == b"toybox\n"
    assert sh("command -v bash gawk; true").stdout == b""
    assert b"not GNU sed" in sh("sed --version").stdout, "toybox sed (it says so)"
    assert sh("ls --group-directories-first /").returncode != 0, "a GNU-only option fails"
    if sim_farm.state.mode in ("root", "userns"):
        assert sh("cat /proc/self/status").stdout.decode().count("\t2000") >= 4
        assert sh("touch /system/x").returncode != 0


def test_stat_and_pull_of_missing_file(sim_farm: SimFarm, tmp_path: Path) -> None:
    record = sim_farm.phones[0]
    result = sim_farm.adb("-s", record.adb_serial, "pull", "/data/local/tmp/nope.bin",
                          str(tmp_path / "x"))
    assert result.returncode != 0
    assert b"No such file" in result.stderr or b"does not exist" in result.stderr
    assert not sim_farm.device(record).sync.exists("/data/local/tmp/nope.bin")


def test_phones_never_see_each_others_files(sim_farm: SimFarm) -> None:
    a, b = sim_farm.phones[0], sim_farm.phones[1]
    marker = f"/data/local/tmp/only-on-{a.serial}"
    sim_farm.adb("-s", a.adb_serial, "shell", f"echo x > {marker}", check=True)
    assert sim_farm.adb("-s", a.adb_serial, "shell", f"test -f {marker}").returncode == 0
    assert sim_farm.adb("-s", b.adb_serial, "shell", f"test -f {marker}").returncode == 1
    assert not Path(marker).exists(), "device paths must not leak onto the host"
    # The farm's directory (other phones' roots) is hidden inside a phone.
    phones_dir = Path(a.base).parent
    listing = sim_farm.adb("-s", a.adb_serial, "shell", f"ls -A {phones_dir}").stdout
    assert listing.strip() == b""


def test_closing_the_stream_kills_the_process_group(sim_farm: SimFarm) -> None:
    record = sim_farm.phones[0]
    tag = "987654"
    cmd = [*_adb_cmd(sim_farm), "-s", record.adb_serial, "shell",
           f"sleep {tag} & sleep {tag}1; echo never"]
    proc = subprocess.Popen(cmd, env=sim_farm.server.env, stdout=subprocess.PIPE)
    try:
        wait_for(lambda: _count(sim_farm, record.adb_serial, tag) == 2)
        proc.kill()  # the adb client dies -> the server closes the stream -> the phone kills
    finally:
        proc.wait()
    wait_for(lambda: _count(sim_farm, record.adb_serial, tag) == 0)


def test_detached_commands_survive_the_stream(sim_farm: SimFarm) -> None:
    record = sim_farm.phones[0]
    tag = "876543"
    sim_farm.adb("-s", record.adb_serial, "shell",
                 f"setsid sleep {tag} </dev/null >/dev/null 2>&1 &", check=True)
    wait_for(lambda: _count(sim_farm, record.adb_serial, tag) == 1)
    sim_farm.adb("-s", record.adb_serial, "shell", f"pkill -f 'sleep {tag}'")
    wait_for(lambda: _count(sim_farm, record.adb_serial, tag) == 0)


def test_garbage_and_truncated_packets_close_only_that_connection(sim_farm: SimFarm) -> None:
    record = sim_farm.phones[0]
    for junk in (b"GET / HTTP/1.1\r\n\r\n" + os.urandom(4000),
                 Message(Command.CNXN, 0x01000001, 4096, b"host::").encode()[:30],
                 Message(Command.CNXN, 0x01000001, 4096, b"x" * 100).encode()[:40]):
        with socket.create_connection(("127.0.0.1", record.port), timeout=5) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            while sock.recv(4096):
                pass  # the phone must close this connection (recv returns b"")
    for other in sim_farm.phones:
        result = sim_farm.adb("-s", other.adb_serial, "shell", "echo alive")
        assert result.stdout == b"alive\n"


def _adb_cmd(sim_farm: SimFarm) -> list[str]:
    from harness.device.adb import adb_binary

    return [adb_binary(), "-P", str(sim_farm.state.adb_port)]


def _count(sim_farm: SimFarm, serial: str, tag: str) -> int:
    out = sim_farm.adb("-s", serial, "shell", "ps -eo args").stdout.decode()
    # toybox runs an applet named by setsid in the same process: "setsid sleep N" in ps.
    return count_lines_starting(out.replace("\nsetsid ", "\n").removeprefix("setsid "),
                                f"sleep {tag}")
