"""Options and output helpers shared by several command modules (one copy of each)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (``--json`` of every command)."""
    click.echo(json.dumps(data, indent=2, default=str))


farm_option = click.option(
    "--farm", "farm_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Farm file (default $HARNESS_HOME/farm.yaml; without one: the local adb server "
         "and the virtual farm when it runs).")

db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
                         default=None, help="Results database (default "
                         "$HARNESS_HOME/results.sqlite).")
