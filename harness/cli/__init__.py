"""The ``harness`` command line: parse options, call one library function, render the result.

One module per command group (devices, run, sim, sync, recipes, runs); this one holds the
group, ``main()`` and the one place where errors become exit codes. May import every layer.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from rich.markup import escape

from harness import __version__
from harness.console import err
from harness.errors import EXIT_INTERRUPTED, EXIT_USAGE, HarnessError
from harness.run.signals import Terminated, signals_as_interrupts


def _fail(message: str, hint: str | None, code: int) -> NoReturn:
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        err.print(f"[bold red]error:[/] {escape(message)}"
                  + (f" [dim]({escape(hint)})[/]" if hint else ""),
                  markup=True)
    sys.exit(code)


def _interrupted(exc: BaseException | None) -> NoReturn:
    """Ctrl-C -> 130; SIGTERM/SIGHUP (see harness.run.signals) -> 128 + N, as a shell says."""
    if isinstance(exc, Terminated):
        _fail(f"terminated by {exc.name}", None, exc.exit_code)
    _fail("interrupted", None, EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every failure to one line and an exit code."""
    try:
        with signals_as_interrupts():
            cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except click.exceptions.Abort as exc:
        _interrupted(exc.__cause__)
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
    except KeyboardInterrupt as exc:
        _interrupted(exc)
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
