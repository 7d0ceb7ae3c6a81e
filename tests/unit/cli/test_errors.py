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


def _bad_yaml(tmp_path: Path) -> Path:
    farm = tmp_path / "farm.yaml"
    farm.write_text("servers: [unclosed\n")
    return farm


def test_debug_prints_the_chain_of_causes_then_the_one_line(tmp_path: Path) -> None:
    farm = _bad_yaml(tmp_path)
    plain = harness("devices", "--farm", str(farm), home=tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    for result in (harness("--debug", "devices", "--farm", str(farm), home=tmp_path),
                   harness("devices", "--farm", str(farm), home=tmp_path,
                           env={"HARNESS_DEBUG": "1"})):
        assert result.returncode == 2  # the exit code does not change
        assert "Traceback" in result.stderr
        assert "yaml.parser.ParserError" in result.stderr  # the cause behind ConfigError
        assert "direct cause of the following exception" in result.stderr
        assert result.stderr.strip().splitlines()[-1] == plain.stderr.strip()


def test_verbose_shows_what_the_core_logs_and_quiet_hides_warnings(tmp_path: Path) -> None:
    from harness.device.adb import free_port

    farm = tmp_path / "farm.yaml"
    farm.write_text(f"servers: [{{name: lab, port: {free_port()}}}]\nsim: false\n")
    quiet = harness("devices", "--farm", str(farm), home=tmp_path)
    # without -v only the CLI's own warning names the server, not the core's log record
    assert quiet.returncode == 0 and quiet.stderr.count("no adb server") == 1
    verbose = harness("-v", "devices", "--farm", str(farm), home=tmp_path)
    assert verbose.returncode == 0
    assert "adb server lab" in verbose.stderr and "no adb server at" in verbose.stderr
    assert harness("-q", "devices", "--farm", str(farm), home=tmp_path).stderr == ""


def test_group_quiet_and_a_commands_own_quiet_do_not_clash(tmp_path: Path) -> None:
    result = harness("-q", "push", "--help", home=tmp_path)
    assert result.returncode == 0 and "--quiet" in result.stdout and "No progress bar" in (
        result.stdout)
    top = harness("--help", home=tmp_path)
    assert "--debug" in top.stdout and "--verbose" in top.stdout and "--quiet" in top.stdout
