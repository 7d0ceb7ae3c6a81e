"""Device errors keep what went wrong as attributes, not only in their message."""

from __future__ import annotations

import pytest

from harness.device.device import CommandResult
from harness.device.errors import TAIL_CHARS, CommandFailed, DeviceError
from harness.errors import EXIT_DEVICE


def test_a_failed_command_carries_command_code_output_and_serial() -> None:
    result = CommandResult("S1", "ls /nope", 2, b"partial\n", b"ls: /nope: No such file\n", 0.1)
    with pytest.raises(CommandFailed) as info:
        result.check()
    error = info.value
    assert str(error) == "S1: `ls /nope` exited with 2: ls: /nope: No such file"
    assert (error.serial, error.command, error.returncode) == ("S1", "ls /nope", 2)
    assert (error.stdout, error.stderr) == ("partial\n", "ls: /nope: No such file\n")
    assert error.exit_code == EXIT_DEVICE
    assert isinstance(error, DeviceError)


def test_a_successful_command_checks_to_itself() -> None:
    result = CommandResult("S1", "true", 0, b"", b"", 0.0)
    assert result.check() is result


def test_output_is_kept_as_a_tail() -> None:
    noisy = ("x" * TAIL_CHARS + "the end").encode()
    error = DeviceError("boom", serial="S1", stderr=noisy)
    assert len(error.stderr) == TAIL_CHARS and error.stderr.endswith("the end")
    assert DeviceError("boom").stderr == "" and DeviceError("boom").serial is None
