"""Options and output helpers shared by several command modules (one copy of each)."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (``--json`` of every command)."""
    click.echo(json.dumps(data, indent=2, default=str))


@dataclass(frozen=True)
class Output:
    """How a command prints its result: as JSON (``--json``) or for a person."""

    json: bool = False

    def emit(self, data: Any, render: Callable[[], None]) -> None:
        """Print ``data`` as JSON with ``--json``, else call ``render`` (tables, text)."""
        if self.json:
            emit_json(data)
        else:
            render()


def output_options(json_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command ``--json`` (with its own help text) and pass it ``output: Output``.

    As sqlite-utils' ``output_options``: the flag and what it does are written once here,
    not as a branch in every command.
    """
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @click.option("--json", "as_json", is_flag=True, help=json_help)
        @functools.wraps(command)
        def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> Any:
            return command(*args, output=Output(json=as_json), **kwargs)

        return wrapper

    return decorate


farm_option = click.option(
    "--farm", "farm_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Farm file (default $HARNESS_HOME/farm.yaml; without one: the local adb server "
         "and the virtual farm when it runs).")

db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
                         default=None, help="Results database (default "
                         "$HARNESS_HOME/results.sqlite).")


class FiniteFloat(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """A float in [min, max] that is neither NaN nor infinite (click's FloatRange lets NaN
    through: every comparison with NaN is false)."""

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None,
                 min_open: bool = False) -> None:
        self.min, self.max, self.min_open = min, max, min_open

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a valid float", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        low = self.min
        if low is not None and (number <= low if self.min_open else number < low):
            self.fail(f"{value} must be {'above' if self.min_open else 'at least'} {low:g}",
                      param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"{value} must be at most {self.max:g}", param, ctx)
        return number
