"""The one error root of harness, and the exit code each kind of error maps to.

Library code raises these; only :mod:`harness.cli` turns them into a one-line message and an
exit status, in one place. Exit codes are documented in the README.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
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


class DeviceError(HarnessError):
    """A phone or its adb server failed; the message names the serial."""

    exit_code = EXIT_DEVICE

    def __init__(self, message: str, *, serial: str | None = None, hint: str | None = None):
        super().__init__(f"{serial}: {message}" if serial else message, hint=hint)
        self.serial = serial


@dataclass(frozen=True)
class CommandFailure:
    """What a failed device command left behind, for error messages and the store."""

    command: str
    exit_code: int | None
    stdout: str
    stderr: str


class AdbError(DeviceError):
    """The adb binary or server reported an error."""


class SimError(HarnessError):
    """The virtual phone farm could not do what was asked."""

    exit_code = EXIT_SIM
