"""Where the core's log records go when the CLI runs a command: stderr, through rich."""

from __future__ import annotations

import logging

from harness.console import err


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
