"""Device.run over shell v2, against a scripted phone on a socketpair: the framing (packets
split anywhere), exit codes, live lines, and the kill on the phone when a command times out.

Shell v2 packets are AOSP adb's ``shell_protocol.h``: one id byte (1 stdout, 2 stderr, 3 exit),
a little-endian u32 length, the data.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

from harness.device.device import Device
from harness.device.errors import CommandTimeout, DeviceDisconnected, DeviceError
from tests.fakes import NOWHERE

PHONE_PID = 4242
Packets = list[tuple[int, bytes]]
HANG = (-1, b"")  # stop answering: the command runs on (until the host hangs up)


def packet(kind: int, data: bytes) -> bytes:
    return struct.pack("<BI", kind, len(data)) + data


class V2Phone(Device):
    """Answers each shell v2 service with the packets ``script(line)`` returns."""

    def __init__(self, script: Callable[[str], Packets], split: int = 0) -> None:
        super().__init__("V2PHONE", NOWHERE, recover_timeout_s=0.0)
        self.script = script
        self.split = split  # > 0: send the stream in pieces of this many bytes
        self.lines: list[str] = []
        self.pidfiles: dict[str, int] = {}
        self.kills: list[int] = []

    def recover(self, timeout_s: float | None = None) -> None:
        pass

    def open_service(self, service: str, timeout_s: float | None) -> socket.socket:
        prefix = "shell,v2,raw:"
        assert service.startswith(prefix), service
        line = service[len(prefix):]
        self.lines.append(line)
        host, phone = socket.socketpair()
        threading.Thread(target=self._serve, args=(phone, line), daemon=True).start()
        return host

    def _serve(self, sock: socket.socket, line: str) -> None:
        with sock:
            stream = b""
            for kind, data in self._answer(line):
                if (kind, data) == HANG:
                    sock.sendall(stream)
                    sock.recv(1)  # until the host closes its end
                    return
                stream += packet(kind, data)
            step = self.split or len(stream) or 1
            for at in range(0, len(stream), step):
                sock.sendall(stream[at : at + step])

    def _answer(self, line: str) -> Packets:
        # Device.run with a timeout: "mkdir -p FG; echo $$ > TOKEN; ( LINE ); rc=$?; ..."
        if m := re.match(r"mkdir -p \S+ 2>/dev/null; echo \$\$ > (\S+); \( (.*) \); rc=\$\?; "
                         r"rm -f \S+; exit \$rc$", line, re.S):
            self.pidfiles[m[1]] = PHONE_PID
            return self.script(m[2])
        if m := re.match(r"cat (\S+) 2>/dev/null; rm -f \S+$", line):
            pid = self.pidfiles.pop(m[1], None)
            return [(1, f"{pid}\n".encode() if pid else b""), (3, b"\0")]
        if "harness_kill_tree" in line and (m := re.search(r"_target=(\d+);", line)):
            self.kills.append(int(m[1]))
            return [(3, b"\0")]
        return self.script(line)


@pytest.mark.parametrize("split", [1, 3, 7, 0])
def test_packets_split_anywhere_make_one_result(split: int) -> None:
    answer = [(1, b"he"), (1, b"llo\nwor"), (2, b"oops\n"), (1, b"ld"), (3, b"\x03")]
    phone = V2Phone(lambda line: answer, split)
    lines: list[tuple[str, str]] = []
    result = phone.run(["echo", "it's"], on_output=lambda s, t: lines.append((s, t)))
    assert phone.lines == ["echo 'it'\"'\"'s'"]  # argv words are quoted
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"hello\nworld", b"oops\n")
    assert lines == [("stdout", "hello"), ("stderr", "oops"), ("stdout", "world")]
    assert result.command == "echo 'it'\"'\"'s'" and not result.ok


def test_check_raises_with_the_last_line_of_stderr() -> None:
    phone = V2Phone(lambda line: [(2, b"first\nNo such file\n"), (3, b"\x01")])
    with pytest.raises(DeviceError, match=r"V2PHONE: `cat /x` exited with 1: No such file"):
        phone.run("cat /x", check=True)


def test_a_timeout_kills_the_command_on_the_phone() -> None:
    phone = V2Phone(lambda line: [(1, b"working\n"), HANG] if line == "sleep 100" else
                    [(3, b"\0")])
    with pytest.raises(CommandTimeout, match="`sleep 100` timed out after 0.2s and was killed "
                                             "on the phone"):
        phone.run("sleep 100", timeout=0.2)
    assert phone.kills == [PHONE_PID], "the command must not outlive its timeout"
    assert phone.pidfiles == {}  # the pid file was read and removed


def test_a_command_that_ends_in_time_is_not_killed() -> None:
    phone = V2Phone(lambda line: [(1, b"ok\n"), (3, b"\0")])
    assert phone.run("true", timeout=30).out == "ok\n"
    assert phone.kills == [] and len(phone.lines) == 1


def test_a_connection_closed_before_the_exit_status_is_a_disconnect() -> None:
    phone = V2Phone(lambda line: [(1, b"partial")])
    with pytest.raises(DeviceDisconnected, match="outcome is unknown"):
        phone.run("long-job")


TEMPS_OUT = ("@@harness:battery\nCurrent Battery Service state:\n  level: 80\n"
             "  temperature: 301\n@@harness:sysfs\n"
             "/sys/class/thermal/thermal_zone0/type:cpu-0-0\n"
             "/sys/class/thermal/thermal_zone0/temp:41000\n@@harness:end\n")


def test_temperatures_primed_by_another_round_trip_are_taken_once_while_fresh(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def script(line: str) -> Packets:
        asked.append(line)
        return [(1, TEMPS_OUT.replace("301", "355").encode()), (3, b"\0")]

    phone = V2Phone(script)
    clock = [100.0]
    monkeypatch.setattr("harness.device.device.time.monotonic", lambda: clock[0])
    assert phone.prime_temps(TEMPS_OUT, read_at=99.5)
    first = phone.temps()
    assert first.battery_temp_c == pytest.approx(30.1) and not asked  # no round trip
    assert phone.temps().battery_temp_c == pytest.approx(35.5) and len(asked) == 1  # once
    assert phone.prime_temps(TEMPS_OUT, read_at=clock[0])
    clock[0] += 3.0  # older than PRIMED_TEMPS_MAX_S: read again
    assert phone.temps().battery_temp_c == pytest.approx(35.5) and len(asked) == 2
    assert not phone.prime_temps(TEMPS_OUT.replace("@@harness:end\n", ""), read_at=clock[0])
    assert phone.temps().battery_temp_c == pytest.approx(35.5) and len(asked) == 3


def test_a_full_facts_read_voids_primed_temperatures() -> None:
    # Primed before a run, then a full read (which has temperatures of its own): the primed
    # ones must not come back later as the run's "after".
    asked: list[str] = []

    def script(line: str) -> Packets:
        asked.append(line)
        return [(1, TEMPS_OUT.replace("301", "355").encode()), (3, b"\0")]

    phone = V2Phone(script)
    assert phone.prime_temps(TEMPS_OUT, read_at=time.monotonic())
    phone.facts()
    assert phone.temps().battery_temp_c == pytest.approx(35.5) and len(asked) == 2
