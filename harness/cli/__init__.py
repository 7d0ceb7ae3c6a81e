"""The ``harness`` command line: parse options, call one library function, render the result.

One module per command group (devices, run, bench, sim, sync, recipes, runs, repro, bundle,
report); this one holds the group, ``main()`` and the one place where errors become exit codes.
May import every layer.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click

from harness import __version__
from harness.console import err, escape
from harness.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, HarnessError
from harness.run.signals import Terminated, signals_as_interrupts

DEBUG_ENV = "HARNESS_DEBUG"  # HARNESS_DEBUG=1: as --debug
MAX_ERROR_CHARS = 1000  # a message quoting a huge value stays one readable line


@dataclass
class CliState:
    """What the global options asked for; ``main`` reads it when an error ends the run."""

    debug: bool = field(default_factory=lambda: os.environ.get(DEBUG_ENV, "") not in ("", "0"))


def _one_line(text: str) -> str:
    """One printable line: no line breaks, lone surrogates (undecodable argv bytes) escaped."""
    text = " ".join(text.split("\n")).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _fail(message: str, hint: str | None, code: int, exc: BaseException | None = None,
          state: CliState | None = None) -> NoReturn:
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        if exc is not None and state is not None and state.debug:
            # The chain of causes behind the one-line message (adb protocol, socket, OS errors).
            import traceback

            sys.stderr.write("".join(traceback.format_exception(exc)))
        err.print(f"[bold red]error:[/] {escape(_one_line(message))}"
                  + (f" [dim]({escape(_one_line(hint))})[/]" if hint else ""),
                  markup=True)
    sys.exit(code)


def _interrupted(exc: BaseException | None, state: CliState) -> NoReturn:
    """Ctrl-C -> 130; SIGTERM/SIGHUP (see harness.run.signals) -> 128 + N, as a shell says."""
    if isinstance(exc, Terminated):
        _fail(f"terminated by {exc.name}", None, exc.exit_code, exc, state)
    _fail("interrupted", None, EXIT_INTERRUPTED, exc, state)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every failure to one line and an exit code."""
    try:
        _main(argv)
    finally:
        if argv is None:  # the process ends now (not a test calling main in-process)
            # Every object left is freed at exit anyway: moved to gc's permanent generation,
            # the interpreter's final collections skip them (~60 ms of a command's exit).
            # Finalizers, atexit handlers and buffered files still run and flush as usual.
            gc.freeze()


def _main(argv: list[str] | None) -> None:
    state = CliState()
    try:
        with signals_as_interrupts():
            cli.main(args=argv, prog_name="harness", standalone_mode=False, obj=state)
    except click.exceptions.Abort as exc:
        _interrupted(exc.__cause__, state)
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
              exc.exit_code, exc, state)
    except KeyboardInterrupt as exc:
        _interrupted(exc, state)
    except OSError as exc:  # the host's file system refused (permissions, a full disk, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", None, EXIT_ERROR, exc, state)
    sys.exit(0)


class _RichOnFirstRecord(logging.Handler):
    """A rich handler made when the first record passes the level (most commands log
    nothing at the default level: they do not import rich.logging, ~20 ms)."""

    def __init__(self, show_time: bool) -> None:
        super().__init__()
        self._show_time = show_time
        self._rich: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._rich is None:
            from rich.logging import RichHandler

            self._rich = RichHandler(console=err, show_time=self._show_time, show_path=False,
                                     markup=False, rich_tracebacks=False)
        self._rich.handle(record)


def configure_logging(verbose: int, quiet: bool, debug: bool) -> None:
    """Send the core's log records (the ``harness`` logger) to stderr at the level asked:
    warnings by default, errors only with ``-q``, info with ``-v``, debug with ``-vv`` or
    ``--debug``."""
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    if verbose == 1:
        level = logging.INFO
    if verbose >= 2 or debug:
        level = logging.DEBUG
    logger = logging.getLogger("harness")
    for handler in [h for h in logger.handlers if getattr(h, "harness_cli", False)]:
        logger.removeHandler(handler)  # a second invocation in one process (tests)
    handler = _RichOnFirstRecord(show_time=debug)
    handler.harness_cli = True  # type: ignore[attr-defined]  # our mark, to find it again
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="harness")
@click.option("--debug", is_flag=True, help=f"On an error, also print the chain of exceptions "
              f"behind it (traceback); log everything. Same as {DEBUG_ENV}=1.")
@click.option("--verbose", "-v", count=True, help="Log what harness does (-vv: every device "
              "command).")
@click.option("--quiet", "-q", is_flag=True, help="Log errors only, no warnings.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, quiet: bool) -> None:
    """A reproducible lab for on-device Stable Diffusion on Snapdragon phones over ADB.

    State lives under $HARNESS_HOME (default ~/.local/share/harness).
    """
    state = ctx.ensure_object(CliState)
    state.debug = state.debug or debug
    configure_logging(verbose, quiet, state.debug)


def _register() -> None:
    from harness.cli import bench, bundle, devices, recipes, report, repro, run, runs, sim, sync

    for module in (devices, run, bench, sim, sync, recipes, runs, repro, bundle, report):
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
