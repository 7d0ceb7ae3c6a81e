"""The README's command reference stays true to --help, and every command documents itself."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness import __version__
from harness.cli import COMMAND_TABLE, cli, iter_commands

README = Path(__file__).resolve().parents[3] / "README.md"


def _readme_commands() -> set[str]:
    table_rows = [ln for ln in README.read_text().splitlines() if ln.startswith("| `harness")]
    names = set()
    for row in table_rows:
        words = re.match(r"\| `harness ([^`]*)`", row)
        assert words, row
        names.add(" ".join(w for w in words.group(1).split() if re.fullmatch(r"[a-z][a-z-]*", w)))
    return names


@pytest.mark.parametrize("limit", [20, 45, 60, 80, 94, 200])
def test_the_help_listing_table_says_what_each_command_says(limit: int) -> None:
    # ``harness --help`` lists the top-level commands from cli.COMMAND_TABLE without
    # importing them: the table names each command's module and its help's first paragraph.
    cli.load_all()
    assert set(COMMAND_TABLE) == set(cli.commands)
    for name, (module, text) in COMMAND_TABLE.items():
        command = cli.commands[name]
        assert command.callback is not None
        assert command.callback.__module__ in (f"harness.cli.{module}", "harness.cli.options")
        assert click.Command(name, help=text).get_short_help_str(limit) == \
            command.get_short_help_str(limit), name


@pytest.mark.parametrize("columns", ["30", "60", "90", "120", "250", "", "junk"])
def test_the_help_width_is_the_one_click_would_choose(columns: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # main() hands click the help width so that click does not import shutil for it; the
    # width must be the one click's formatter computes itself (max_content_width, the 2
    # columns of margin, the 50-column floor).
    from click.formatting import HelpFormatter

    from harness.cli import MAX_HELP_WIDTH, _help_width

    monkeypatch.setenv("COLUMNS", columns)
    assert _help_width() == HelpFormatter(max_width=MAX_HELP_WIDTH).width


def test_every_command_has_help_text() -> None:
    for name, command in iter_commands():
        assert isinstance(command, click.Command)
        assert command.help and command.help.strip(), f"`harness {name}` has no help text"


def test_readme_lists_exactly_the_leaf_commands() -> None:
    leaves = {name for name, cmd in iter_commands() if not isinstance(cmd, click.Group)}
    documented = _readme_commands() - {""}
    assert documented == leaves


@pytest.mark.parametrize("name", [n for n, c in iter_commands() if not isinstance(c, click.Group)])
def test_readme_options_exist(name: str) -> None:
    command: click.Command = cli
    for part in name.split():
        assert isinstance(command, click.Group)
        command = command.commands[part]
    opts = {o for p in command.params for o in getattr(p, "opts", [])}
    for row in README.read_text().splitlines():
        match = re.match(rf"\| `harness {re.escape(name)}( [^`]*)?`", row)
        if match:
            for flag in re.findall(r"(--[a-z][a-z0-9-]*)", match.group(1) or ""):
                assert flag in opts, f"README shows {flag} for `harness {name}`"


def test_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "sim" in result.output
