"""The ``harness`` command line: parse options, call one library function, render the result.

One module per command group (devices, run, bench, sim, sync, recipes, runs, repro, bundle,
report); this one holds the group, ``main()`` and the one place where errors become exit codes.
May import every layer.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from harness import __version__
from harness.console import err, escape
from harness.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, HarnessError
from harness.run.signals import Terminated, signals_as_interrupts

DEBUG_ENV = "HARNESS_DEBUG"  # HARNESS_DEBUG=1: as --debug
MAX_HELP_WIDTH = 100  # click's max_content_width of every help page
MAX_ERROR_CHARS = 1000  # a message quoting a huge value stays one readable line


class CliState:
    """What the global options asked for; ``main`` reads it when an error ends the run.
    (A plain class: ``harness --help`` imports no dataclasses, ~5 ms.)"""

    def __init__(self) -> None:
        self.debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")


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


def _help_width() -> int:
    """The width click's help formatter gives itself when it is given none,
    ``max(min(shutil.get_terminal_size().columns, MAX_HELP_WIDTH) - 2, 50)``
    (click.formatting.HelpFormatter), without importing shutil (and with it bz2 and lzma:
    ~3 ms of ``harness --help``): the columns are $COLUMNS, else stdout's terminal's, else 80,
    as shutil.get_terminal_size finds them."""
    columns = 0
    with contextlib.suppress(ValueError):
        columns = int(os.environ.get("COLUMNS", "0"))
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return max(min(columns or 80, MAX_HELP_WIDTH) - 2, 50)


def _main(argv: list[str] | None) -> None:
    state = CliState()
    try:
        with signals_as_interrupts():
            cli.main(args=argv, prog_name="harness", standalone_mode=False, obj=state,
                     terminal_width=_help_width())
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


# Each top-level command: the module that defines it (its ``COMMANDS``) and the first
# paragraph of its help. ``harness --help`` lists the commands from this table, and a command
# imports only its own module: importing all ten (~15 ms, click decorators for ~200 options)
# was a third of every command's start-up (issue 12). tests/unit/cli/test_docs.py checks the
# table against the commands themselves.
COMMAND_TABLE: dict[str, tuple[str, str]] = {
    "assets": ("sync", "Asset sets: what harness pushes to phones, and whether phones have it."),
    "bench": ("bench", "Bench every eligible phone x recipe: fair, judged, stored, gated "
                       "against a baseline."),
    "bundle": ("bundle", "Pack one run into a .tar.gz: plan, run.sh, device facts, logs, perf, "
                         "telemetry, PNGs, verdicts and the digests of its asset sets, with a "
                         "README and a manifest."),
    "convert": ("recipes", "Convert a qfp32 tensor (VAE image or latent) to PNG, counting "
                           "NaN/Inf values."),
    "devices": ("devices", "List the phones on every adb server of the farm, with their facts "
                           "and leases."),
    "doctor": ("devices", "Check adb servers and phones: reachability, authorization, battery, "
                          "heat, space."),
    "push": ("sync", "Sync asset sets to phones: only new or changed files, atomically, in "
                     "parallel."),
    "recipes": ("recipes", "Recipes: list, show, render to a shell script, lint for known "
                           "pitfalls."),
    "replay": ("bundle", "Run a bundle's plan on another phone (same asset digests, or synced "
                         "from this host's matching assets) and show both runs side by side."),
    "report": ("report", "Report one bench (a unique prefix of its id, or --last): "
                         "regressions, failures, invalid runs, series over nights, phones and "
                         "runs."),
    "repro": ("repro", "Reproduce failures: sweep switches, bisect two plans."),
    "results": ("bench", "Results databases: merge shards and hosts into one."),
    "run": ("run", "Run a recipe on a phone: sync, tokenize, run each step, parse [Perf], pull "
                   "PNGs, store."),
    "runs": ("runs", "Stored runs: list and show what ran, where, and what it measured."),
    "sim": ("sim", "Virtual Snapdragon phones behind a private adb server (for trying and "
                   "testing)."),
    "tokenize": ("recipes", "Write CLIP token ids (2 x 77 int32, rows [uncond, cond]) for a "
                            "prompt."),
}


class LazyGroup(click.Group):
    """The top-level group: a command's module is imported when the command is looked up
    (click's documented pattern for lazy subcommands); the help listing needs none."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_TABLE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_TABLE:
            self._load(COMMAND_TABLE[cmd_name][0])
        return self.commands.get(cmd_name)

    def _load(self, module_name: str) -> None:
        module = importlib.import_module(f"harness.cli.{module_name}")
        for command in module.COMMANDS:
            self.commands.setdefault(command.name or "", command)

    def load_all(self) -> None:
        for module_name in sorted({m for m, _help in COMMAND_TABLE.values()}):
            self._load(module_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is None:  # click's own shortening, of the table's text
                command = click.Command(name, help=COMMAND_TABLE[name][1])
                rows.append((name, command.get_short_help_str(limit)))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": MAX_HELP_WIDTH})
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
    from harness.cli.logsetup import configure_logging  # not for --help: no logging import

    configure_logging(verbose, quiet, state.debug)


# Registry used by tests/test_docs.py to check that every command has help text.
def iter_commands() -> list[tuple[str, Callable[..., Any]]]:
    found: list[tuple[str, Any]] = []
    cli.load_all()

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
