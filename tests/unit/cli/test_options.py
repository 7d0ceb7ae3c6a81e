"""The shared output options: one --json, with each command's own help, and its two outputs."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from harness.cli.options import Output, output_options


@click.command()
@click.option("--name", default="x", help="A name.")
@output_options("Print the thing as JSON.")
def thing(name: str, output: Output) -> None:
    """Show a thing."""
    output.emit({"name": name, "json": output.json}, lambda: click.echo(f"thing {name}"))


def test_json_prints_the_data_and_nothing_else() -> None:
    result = CliRunner().invoke(thing, ["--name", "a", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"name": "a", "json": True}


def test_without_json_the_renderer_runs() -> None:
    result = CliRunner().invoke(thing, ["--name", "b"])
    assert result.output == "thing b\n"


def test_the_help_is_the_commands_own_and_in_place() -> None:
    lines = CliRunner().invoke(thing, ["--help"]).output.splitlines()
    options = [line.split()[0] for line in lines if line.startswith("  --")]
    assert options == ["--name", "--json", "--help"]
    assert any("Print the thing as JSON." in line for line in lines)
