"""Errors reach the user as one line, verbatim (no markup eaten), with the documented code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def harness(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARNESS_HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_bracketed_user_text_is_printed_verbatim(tmp_path: Path) -> None:
    result = harness(tmp_path, "recipes", "show", "[red]nope[/red]")
    assert result.returncode == 2
    assert "[red]nope[/red]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_command_and_option_are_usage_errors(tmp_path: Path) -> None:
    assert harness(tmp_path, "frobnicate").returncode == 2
    result = harness(tmp_path, "sim", "up", "--phones", "many")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_convert_of_a_bad_size_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.qfp32"
    bad.write_bytes(b"\0" * 1000)
    result = harness(tmp_path, "convert", str(bad))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
