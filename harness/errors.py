"""The one error root of harness, the errors every layer shares, and the exit code each kind
of error maps to.

Library code raises these (and each layer's own, in its ``errors`` module: e.g.
:mod:`harness.device.errors`); only :mod:`harness.cli` turns them into a one-line message and
an exit status, in one place. Exit codes are documented in the README.
"""

from __future__ import annotations

EXIT_ERROR = 1  # any HarnessError not listed below
EXIT_USAGE = 2  # bad command line or bad input file (click uses 2 too)
EXIT_DEVICE = 3  # a phone or adb server could not be reached or misbehaved
EXIT_SIM = 4  # the virtual farm could not be started or stopped
EXIT_RUN_FAILED = 5  # a run ended, was stored, and failed (a step exited non-zero, OOM...)
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell would report it


class HarnessError(Exception):
    """Root of every error harness raises on purpose.

    ``hint`` is an optional second sentence telling the user what to do about it.
    """

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(HarnessError):
    """The user asked for something that cannot be done as asked (bad option, bad file)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A YAML or configuration file is malformed; the message names file and line."""


class LocalFileError(HarnessError):
    """A file on this host could not be read or written (not the phone's fault).

    ``path`` is the file; the ``OSError`` behind it is the ``__cause__``.
    """

    def __init__(self, message: str, *, path: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


__all__ = [
    "EXIT_DEVICE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_RUN_FAILED",
    "EXIT_SIM",
    "EXIT_USAGE",
    "ConfigError",
    "HarnessError",
    "LocalFileError",
    "UsageError",
]
