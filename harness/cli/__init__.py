"""The ``harness`` command line: parse options, call one library function, render the result.

One module per command group (devices, run, sim, sync, recipes, runs); this one holds the
group, ``main()`` and the one place where errors become exit codes. May import every layer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from rich.markup import escape

from harness import __version__
from harness.console import err
from harness.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, HarnessError

MAX_ERROR_CHARS = 1000  # a message quoting a huge value stays one readable line


def _one_line(text: str) -> str:
    """One printable line: no line breaks, lone surrogates (undecodable argv bytes) escaped."""
    text = " ".join(text.split("\n")).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _fail(message: str, hint: str | None, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(_one_line(message))}"
              + (f" [dim]({escape(_one_line(hint))})[/]" if hint else ""),
              markup=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every failure to one line and an exit code."""
    try:
        cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", None, EXIT_INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        usage_hint = None
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            usage_hint = f"see `{ctx.command_path} --help`"
        _fail(exc.format_message(), usage_hint, exc.exit_code or EXIT_USAGE)
    except HarnessError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.hint,
              exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", None, EXIT_INTERRUPTED)
    except OSError as exc:  # the host's file system refused (permissions, a full disk, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", None, EXIT_ERROR)
    sys.exit(0)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="harness")
def cli() -> None:
    """A reproducible lab for on-device Stable Diffusion on Snapdragon phones over ADB.

    State lives under $HARNESS_HOME (default ~/.local/share/harness).
    """


def _register() -> None:
    from harness.cli import devices, recipes, run, runs, sim, sync

    for module in (devices, run, sim, sync, recipes, runs):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


# Registry used by tests/test_docs.py to check that every command has help text.
def iter_commands() -> list[tuple[str, Callable[..., Any]]]:
    found: list[tuple[str, Any]] = []

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in sorted(group.commands.items()):
            found.append((f"{prefix} {name}".strip(), command))
            if isinstance(command, click.Group):
                walk(command, f"{prefix} {name}")

    walk(cli, "")
    return found


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["cli", "main"]
