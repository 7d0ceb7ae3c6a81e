"""Errors reach the user as one line, verbatim (no markup eaten), with the documented code."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import harness


def test_bracketed_user_text_is_printed_verbatim(tmp_path: Path) -> None:
    result = harness("recipes", "show", "[red]nope[/red]", home=tmp_path)
    assert result.returncode == 2
    assert "[red]nope[/red]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_command_and_option_are_usage_errors(tmp_path: Path) -> None:
    assert harness("frobnicate", home=tmp_path).returncode == 2
    result = harness("sim", "up", "--phones", "many", home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_convert_of_a_bad_size_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.qfp32"
    bad.write_bytes(b"\0" * 1000)
    result = harness("convert", str(bad), home=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
