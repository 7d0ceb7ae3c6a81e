"""The phone userland: toybox links, sh -> mksh, and the stand-ins for missing applets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.sim import userland

UL = userland.detect()
needs_packages = pytest.mark.skipif(not UL.complete, reason="toybox/mksh/original-awk absent")


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("system") / "bin"
    userland.install(path, UL, frozenset({"id"}))
    return path


def run(bin_dir: Path, command: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(bin_dir / "sh"), "-c", command], input=data,
                          env={"PATH": str(bin_dir)}, capture_output=True, timeout=20,
                          check=False)


@needs_packages
def test_system_bin_is_a_phones(bin_dir: Path) -> None:
    assert os.readlink(bin_dir / "ls") == "toybox"
    assert os.readlink(bin_dir / "sh") == UL.mksh
    assert os.readlink(bin_dir / "awk") == UL.awk
    assert not (bin_dir / "id").exists(), "kept names are left to the virtual phone"
    assert not (bin_dir / "su").exists(), "Debian's toybox has su; a phone's has not"
    assert b"MIRBSD KSH" in run(bin_dir, "echo $KSH_VERSION").stdout
    assert run(bin_dir, "awk 'BEGIN { print 1 + 1 }'").stdout == b"2\n"
    # A GNU-only option fails, as on a phone.
    assert run(bin_dir, "ls --group-directories-first /").returncode != 0
    assert run(bin_dir, "bash -c true").returncode == 127


@needs_packages
@pytest.mark.parametrize(("command", "data", "out"), [
    ("tr '\\n' '\\0'", b"a\nb\n", b"a\0b\0"),
    ("tr a-z A-Z", b"hello\n", b"HELLO\n"),
    ("tr -d '[:digit:]'", b"a1b2\n", b"ab\n"),
    ("tr -s ' '", b"a   b\n", b"a b\n"),
    ("tr -c 'a\\n' x", b"abc\n", b"axx\n"),
    ("expr 3 + 4 '*' 2", b"", b"11\n"),
    ("expr abcdef : 'ab\\(.*\\)'", b"", b"cdef\n"),
    ("expr 7 % 3 = 1", b"", b"1\n"),
    ("dd bs=2 count=2 status=none", b"abcdef", b"abcd"),
    ("dd skip=1 bs=3 status=none", b"abcdef", b"def"),
])
def test_standins(bin_dir: Path, command: str, data: bytes, out: bytes) -> None:
    result = run(bin_dir, command, data)
    assert (result.returncode, result.stdout) == (0, out), result.stderr


@needs_packages
def test_standins_refuse_what_toybox_refuses(bin_dir: Path) -> None:
    assert run(bin_dir, "tr --delete a", b"a").returncode == 1
    assert run(bin_dir, "expr 1 / 0").returncode == 2
    assert run(bin_dir, "expr 0").returncode == 1
    assert run(bin_dir, "dd iflag=fullblock", b"").returncode == 1
    dd = run(bin_dir, "dd bs=1k count=1 if=/dev/zero of=/dev/null")
    assert dd.stderr.startswith(b"1+0 records in\n1+0 records out\n")


def test_without_the_packages_the_phone_says_so() -> None:
    none = userland.Userland(None, "/bin/mksh", None)
    assert not none.complete
    assert "missing: toybox, original-awk" in none.describe()
    assert userland.shell_path("/r").split(":")[4] == "/r/system/bin"
