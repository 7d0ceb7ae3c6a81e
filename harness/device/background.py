"""Background runs: a command on the phone that survives the host.

A background run is started detached from the adb stream — its own session and process
group (``setsid``), stdout/stderr to files on the phone, its PID recorded, and its exit
status written to a file when it ends — so a USB drop, an adb server restart or a dying host
process neither kills it nor loses its result. :meth:`BackgroundRun.attach` follows it (again,
after reconnecting); :meth:`BackgroundRun.kill` kills its whole process group on the phone.

Layout on the phone, one directory per run under ``/data/local/tmp/.harness/runs/<id>/``:
``run.sh`` (the wrapper), ``pid``, ``stdout``, ``stderr``, ``exit`` (written atomically).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.device import devshell
from harness.device.device import CommandTimeout, Device, DeviceDisconnected, OutputCallback
from harness.errors import DeviceError

RUNS_DIR = "/data/local/tmp/.harness/runs"
POLL_MIN_S = 0.02  # first polls come quickly: short steps end in well under a second
# Then back off to this. One poll is one cheap adb round trip (2 ms on loopback, 10-25 ms
# over USB), so ten a second cost little and bound how late an ended step is noticed.
POLL_MAX_S = 0.1
POLL_CHUNK_BYTES = 4 * 1024 * 1024  # the most output one poll brings back per stream
STATUS_PREFIX = "@@harness-status "
# Wrappers up to this size travel inside the launch command (adb requests are < 64 KiB).
INLINE_SCRIPT_MAX_BYTES = 32 * 1024


@dataclass(frozen=True)
class RunOutcome:
    """How a background run ended."""

    run_id: str
    exit_code: int | None  # None: killed before the wrapper could record a status
    stdout: bytes
    stderr: bytes
    duration_s: float
    killed: bool = False  # killed by harness (timeout, Ctrl-C, explicit kill)
    timed_out: bool = False
    reconnects: int = 0  # how many times the connection was recovered while following

    @property
    def signal(self) -> int | None:
        """The signal that ended the command, when its status says so (128+N)."""
        if self.exit_code is not None and self.exit_code > 128:
            return self.exit_code - 128
        return None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.killed


def wrapper_script(run_dir: str, argv: devshell.Command, env: Mapping[str, str],
                   cwd: str | None) -> str:
    """The run's ``run.sh``: record the PID, run, record the exit status atomically."""
    d = devshell.quote(run_dir)
    line = devshell.compose(argv, env, None)
    cd = f"cd {devshell.quote(cwd)} || {{ echo 127 > {d}/exit.tmp; mv {d}/exit.tmp {d}/exit; " \
         "exit 127; }\n" if cwd else ""
    return (
        "#!/system/bin/sh\n"
        f"echo $$ > {d}/pid.tmp && mv {d}/pid.tmp {d}/pid\n"
        f"{cd}"
        f"( {line} ) > {d}/stdout 2> {d}/stderr < /dev/null\n"
        "rc=$?\n"
        f"echo $rc > {d}/exit.tmp && mv {d}/exit.tmp {d}/exit\n"
    )


def poll_command(run_dir: str, out_offset: int, err_offset: int) -> str:
    """One round trip: a status line then new stdout bytes on stdout, new stderr on stderr."""
    d = devshell.quote(run_dir)
    return (
        f"if [ -f {d}/exit ]; then s=\"exit $(cat {d}/exit)\"; "
        f"elif [ -s {d}/pid ] && kill -0 $(cat {d}/pid) 2>/dev/null; then s=running; "
        f"elif [ -f {d}/exit ]; then s=\"exit $(cat {d}/exit)\"; "
        f"elif [ -s {d}/pid ]; then s=gone; else s=starting; fi; "
        f'echo "{STATUS_PREFIX}$s"; '
        f"tail -c +{out_offset + 1} {d}/stdout 2>/dev/null | head -c {POLL_CHUNK_BYTES}; "
        f"tail -c +{err_offset + 1} {d}/stderr 2>/dev/null | head -c {POLL_CHUNK_BYTES} >&2"
    )


@dataclass
class BackgroundRun:
    """A handle on a detached run; it can be re-created from (device, run_id) alone."""

    device: Device
    run_id: str
    started: float = field(default_factory=time.time)
    pid: int | None = None

    @property
    def run_dir(self) -> str:
        return f"{RUNS_DIR}/{self.run_id}"

    @classmethod
    def start(cls, device: Device, argv: devshell.Command,
              env: Mapping[str, str] | None = None, cwd: str | None = None,
              name: str = "run") -> BackgroundRun:
        """Start ``argv`` detached on the phone; return once its PID is recorded."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]
        run = cls(device, f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{uuid.uuid4().hex[:8]}")
        script = wrapper_script(run.run_dir, argv, env or {}, cwd)
        d = devshell.quote(run.run_dir)
        if len(script) <= INLINE_SCRIPT_MAX_BYTES:
            # One round trip: create the folder, write the wrapper, launch it, report the PID.
            write = f"mkdir -p {d} && printf '%s' {devshell.quote(script)} > {d}/run.sh && "
        else:
            device.run(f"mkdir -p {d}", check=True, timeout=30)
            device.push_bytes(script.encode(), f"{run.run_dir}/run.sh", mode=0o755)
            write = ""
        # Only the setsid command goes to the background: with `a && b && c &` mksh forks a
        # subshell for the whole list that keeps adb's stdout open until c ends (dash execs
        # c in place, which hid this), so the launch would wait for the run.
        launched = device.run(
            f"{write}{{ setsid sh {d}/run.sh < /dev/null > /dev/null 2>&1 & }}; "
            f"i=0; while [ ! -s {d}/pid ] && [ $i -lt 1000 ]; do sleep 0.005; i=$((i+1)); "
            f"done; cat {d}/pid", timeout=30)
        text = launched.out.strip()
        if not text.isdigit():
            raise DeviceError(f"background run {run.run_id} did not start: "
                              f"{launched.err.strip() or text or 'no PID'}",
                              serial=device.serial)
        run.pid = int(text)
        return run

    def attach(self, on_output: OutputCallback | None = None, timeout: float | None = None,
               kill_on_timeout: bool = True) -> RunOutcome:
        """Follow the run to its end, surviving disconnects and adb server restarts.

        Output already seen is not repeated; lines go to ``on_output`` as they come.
        """
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        out, err = bytearray(), bytearray()
        pending = {"stdout": bytearray(), "stderr": bytearray()}
        interval = POLL_MIN_S
        reconnects = 0
        while True:
            try:
                result = self.device.run(poll_command(self.run_dir, len(out), len(err)),
                                         timeout=60)
            except (DeviceDisconnected, CommandTimeout):
                reconnects += 1
                self.device.recover()
                continue
            except DeviceError:
                # Server gone, phone gone: wait (bounded) for it, then follow again.
                reconnects += 1
                self.device.recover()
                continue
            status, _, new_out = result.stdout.partition(b"\n")
            state = status.decode(errors="replace").removeprefix(STATUS_PREFIX).strip()
            out += new_out
            err += result.stderr
            if on_output is not None:
                _lines(pending["stdout"], new_out, "stdout", on_output)
                _lines(pending["stderr"], result.stderr, "stderr", on_output)
            more = len(new_out) >= POLL_CHUNK_BYTES or len(result.stderr) >= POLL_CHUNK_BYTES
            if state.startswith("exit ") and not more:
                code_text = state.split()[1] if len(state.split()) > 1 else ""
                code = int(code_text) if code_text.isdigit() else None
                return self._outcome(code, out, err, start, reconnects, pending, on_output)
            if state == "gone" and not more:
                return self._outcome(None, out, err, start, reconnects, pending, on_output,
                                     killed=True)
            if deadline is not None and time.monotonic() > deadline:
                if kill_on_timeout:
                    self.kill()
                return self._outcome(None, out, err, start, reconnects, pending, on_output,
                                     killed=kill_on_timeout, timed_out=True)
            if not more:
                time.sleep(interval)
                interval = min(interval * 1.5, POLL_MAX_S)

    def _outcome(self, code: int | None, out: bytearray, err: bytearray, start: float,
                 reconnects: int, pending: dict[str, bytearray],
                 on_output: OutputCallback | None, killed: bool = False,
                 timed_out: bool = False) -> RunOutcome:
        if on_output is not None:
            for name, rest in pending.items():
                if rest:
                    on_output(name, rest.decode("utf-8", "replace"))
        return RunOutcome(self.run_id, code, bytes(out), bytes(err),
                          time.monotonic() - start, killed, timed_out, reconnects)

    def kill(self) -> None:
        """SIGKILL the run's process group and tree on the phone (idempotent)."""
        pid = self.pid or self._read_pid()
        if pid is None:
            return
        with contextlib.suppress(DeviceError):
            self.device.recover(10.0)
        self.device.run(devshell.kill_tree_command(pid), timeout=30)

    def _read_pid(self) -> int | None:
        text = self.device.run(f"cat {devshell.quote(self.run_dir)}/pid 2>/dev/null",
                               timeout=30).out.strip()
        return int(text) if text.isdigit() else None

    def cleanup(self) -> None:
        """Remove the run's directory from the phone."""
        self.device.run(["rm", "-rf", self.run_dir], timeout=30)


def _lines(pending: bytearray, data: bytes, name: str, callback: OutputCallback) -> None:
    pending += data
    while (idx := pending.find(b"\n")) >= 0:
        callback(name, pending[:idx].rstrip(b"\r").decode("utf-8", "replace"))
        del pending[: idx + 1]


__all__ = ["BackgroundRun", "RunOutcome", "Sequence"]
