"""The phone's device-side tools (sh scripts) run as real processes against its state."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import time
from pathlib import Path

import pytest

from harness.sim import devtools, profiles, state


def make(tmp_path: Path, name: str) -> tuple[Path, Path]:
    prof = profiles.load_profile(name)
    ctl, root = tmp_path / "ctl", tmp_path / "root"
    state.init_phone(ctl, prof, "R5CX1234", 0.01)
    devtools.install_system(root, prof, "R5CX1234")
    return ctl, root


@pytest.fixture
def phone(tmp_path: Path) -> tuple[Path, Path]:
    return make(tmp_path, "sm8650-16g")


def sh(phone: tuple[Path, Path], command: str,
       extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    ctl, root = phone
    env = dict(os.environ, HARNESS_SIM_ROOT=str(root), HARNESS_SIM_DIR=str(ctl),
               PATH=f"{root}/system/bin:{root}/system/xbin:/usr/bin:/bin", **(extra or {}))
    return subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True,
                          timeout=20, check=False)


def test_getprop(phone: tuple[Path, Path]) -> None:
    lines = sh(phone, "getprop").stdout.splitlines()
    assert "[ro.soc.model]: [SM8650]" in lines
    assert "[ro.serialno]: [R5CX1234]" in lines
    keys = [line[1:line.index("]")] for line in lines]
    assert keys == sorted(keys)
    assert sh(phone, "getprop ro.soc.model").stdout == "SM8650\n"
    assert sh(phone, "getprop ro.board.platform").stdout == "pineapple\n"
    assert sh(phone, "getprop no.such.prop").stdout == "\n"
    assert sh(phone, "getprop no.such.prop fallback").stdout == "fallback\n"
    # Values with spaces survive; a key that looks like a glob matches nothing.
    assert sh(phone, "getprop ro.hardware.egl").stdout == "adreno\n"
    assert sh(phone, "getprop 'ro.*'").stdout == "\n"


def test_dumpsys(phone: tuple[Path, Path]) -> None:
    ctl, _ = phone
    state.PhoneState(ctl).set_temperature(31.4)
    st = state.PhoneState(ctl)
    st.render(phone[1], st.thermal(), [], False)
    out = sh(phone, "dumpsys battery").stdout
    assert out.startswith("Current Battery Service state:\n")
    assert "  temperature: 314\n" in out and "  level: 85\n" in out
    assert "  USB powered: true\n" in out
    done = sh(phone, "dumpsys nosuchservice")
    assert done.returncode == 0 and done.stdout == "Can't find service: nosuchservice\n"
    assert "Thermal Status: 0" in sh(phone, "dumpsys thermalservice").stdout


def test_logcat_dump_filter_tail_and_clear(phone: tuple[Path, Path]) -> None:
    ctl, _ = phone
    st = state.PhoneState(ctl)
    st.logcat_append("lowmemorykiller", "I", "Kill 'sdxl_pipeline_run' (1234)", 587)
    st.logcat_append("chatty", "D", "noise", 99)
    dump = sh(phone, "logcat -d -b all -v threadtime").stdout
    assert "lowmemorykiller: Kill 'sdxl_pipeline_run' (1234)" in dump and "noise" in dump
    only = sh(phone, "logcat -d -s lowmemorykiller").stdout.splitlines()
    assert [line for line in only if not line.startswith("-")] == [
        line for line in dump.splitlines() if " lowmemorykiller: " in line]
    assert "Kill 'sdxl" in only[-1]
    assert "noise" not in sh(phone, "logcat -d '*:I'").stdout
    assert sh(phone, "logcat -t 1").stdout.rstrip().endswith("noise")
    assert sh(phone, "logcat -c").returncode == 0
    assert sh(phone, "logcat -d").stdout == ""


def test_logcat_without_d_follows(phone: tuple[Path, Path]) -> None:
    ctl, root = phone
    env = dict(os.environ, HARNESS_SIM_ROOT=str(root), HARNESS_SIM_DIR=str(ctl))
    proc = subprocess.Popen([str(root / "system/bin/logcat"), "-s", "sim"], env=env,
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        time.sleep(0.3)
        state.PhoneState(ctl).logcat_append("sim", "I", "hello follower", 1)
        assert proc.stdout is not None
        got = ""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 10
            while "hello follower" not in got and time.monotonic() < deadline:
                if sel.select(timeout=0.5):
                    got += os.read(proc.stdout.fileno(), 4096).decode()
        assert got.rstrip().endswith("I sim     : hello follower")
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_id_and_su(tmp_path: Path, phone: tuple[Path, Path]) -> None:
    assert sh(phone, "id").stdout.startswith("uid=2000(shell) gid=2000(shell) groups=2000(shell),")
    assert sh(phone, "id -u").stdout == "2000\n"
    assert sh(phone, "whoami").stdout == "shell\n"
    # A stock phone has no su at all (the sandbox masks the host's own, see test_device).
    assert not (phone[1] / "system/bin/su").exists()
    assert not (phone[1] / "system/xbin/su").exists()
    rooted = make(tmp_path / "rooted", "sm8550-12g")
    assert sh(rooted, "id -u").stdout == "2000\n"
    assert sh(rooted, "su -c id").stdout.startswith("uid=0(root) gid=0(root)")
    assert sh(rooted, "su 0 id -u").stdout == "0\n"
    assert sh(rooted, "su root sh -c 'whoami'").stdout == "root\n"


def test_install_is_idempotent_and_switches_su(tmp_path: Path) -> None:
    _, root = make(tmp_path, "sm8550-12g")
    assert (root / "system/xbin/su").exists() and not (root / "system/bin/su").exists()
    devtools.install_system(root, profiles.load_profile("sm8650-16g"), "X")
    assert not (root / "system/xbin/su").exists() and not (root / "system/bin/su").exists()
    for lib in ("vendor/lib64/libOpenCL.so", "vendor/lib64/libCB.so",
                "vendor/lib64/libOpenCL_adreno.so", "system/lib64/libc++.so"):
        assert (root / lib).read_bytes().startswith(devtools.ELF_MAGIC)
    assert (root / "data/local/tmp").is_dir() and (root / "sdcard").is_dir()


def test_dmesg_is_for_root_only(phone: tuple[Path, Path]) -> None:
    ctl, _ = phone
    st = state.PhoneState(ctl)
    st.kmsg_append(["Out of memory: Killed process 4321 (sdxl_pipeline_r) total-vm:1kB"])
    shell = sh(phone, "dmesg")
    # toybox dmesg.c: /dev/kmsg refused, then perror_exit("klogctl")
    assert (shell.returncode, shell.stdout, shell.stderr) == (
        1, "", "dmesg: klogctl: Permission denied\n")
    root = sh(phone, "dmesg", {"HARNESS_SIM_UID": "0"})
    assert root.returncode == 0
    assert root.stdout.startswith("[    0.000000] Booting Linux on physical CPU")
    assert re.search(r"^\[ *\d+\.\d{6}\] Out of memory: Killed process 4321 "
                     r"\(sdxl_pipeline_r\)", root.stdout, re.M), root.stdout
