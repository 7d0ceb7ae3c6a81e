"""Every error of the device layer, in one place.

A device error names the phone in its message and keeps what went wrong as attributes, not
only in the text (as mobly's ``AdbError`` does): the ``serial``, the ``command`` that ran, its
``returncode`` and the tails of its ``stdout`` and ``stderr``. The process exit code of all of
them is :data:`harness.errors.EXIT_DEVICE`.
"""

from __future__ import annotations

from harness.errors import EXIT_DEVICE, HarnessError

TAIL_CHARS = 2000  # enough for the last lines of a binary's error output, small for a log


def tail(text: str | bytes | None, limit: int = TAIL_CHARS) -> str:
    """The last ``limit`` characters of ``text`` (bytes are decoded leniently)."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= limit else text[-limit:]


class DeviceError(HarnessError):
    """A phone or its adb server failed; the message names the serial.

    ``command``, ``returncode``, ``stdout`` and ``stderr`` are set when a command was
    involved (``stdout``/``stderr`` are tails of at most :data:`TAIL_CHARS` characters).
    """

    exit_code = EXIT_DEVICE

    def __init__(self, message: str, *, serial: str | None = None, hint: str | None = None,
                 command: str | None = None, returncode: int | None = None,
                 stdout: str | bytes | None = None, stderr: str | bytes | None = None) -> None:
        super().__init__(f"{serial}: {message}" if serial else message, hint=hint)
        self.serial = serial
        self.command = command
        self.returncode = returncode
        self.stdout = tail(stdout)
        self.stderr = tail(stderr)


class AdbError(DeviceError):
    """The adb binary or server reported an error (or could not be found or started)."""


class AdbServerUnreachable(DeviceError):
    """No adb server answers at the endpoint."""


class DeviceNotFound(DeviceError):
    """The adb server does not know this serial."""


class DeviceOffline(DeviceError):
    """The phone is known but offline."""


class DeviceUnauthorized(DeviceError):
    """The phone has not accepted this host's adb key."""


class DeviceDisconnected(DeviceError):
    """The connection broke while a command was running; its outcome is unknown."""


class CommandTimeout(DeviceError):
    """A command ran past its timeout; it has been killed on the phone."""


class CommandFailed(DeviceError):
    """A command that had to succeed exited non-zero (``returncode`` says with what)."""


__all__ = [
    "TAIL_CHARS",
    "AdbError",
    "AdbServerUnreachable",
    "CommandFailed",
    "CommandTimeout",
    "DeviceDisconnected",
    "DeviceError",
    "DeviceNotFound",
    "DeviceOffline",
    "DeviceUnauthorized",
    "tail",
]
