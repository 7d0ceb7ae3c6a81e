"""Background runs: a command on the phone that survives the host.

A background run is started detached from the adb stream — its own session and process
group (``setsid``), stdout/stderr to files on the phone, its PID recorded, and its exit
status written to a file when it ends — so a USB drop, an adb server restart or a dying host
process neither kills it nor loses its result. :meth:`BackgroundRun.attach` follows it (again,
after reconnecting); :meth:`BackgroundRun.kill` kills its whole process group on the phone.

Layout on the phone, one directory per run under ``/data/local/tmp/.harness/runs/<id>/``:
``run.sh`` (the wrapper), ``holder`` (who started it: host, harness PID and that PID's start
identity, the harness run id, the start time; ``key=value`` lines), ``pid``, ``stdout``,
``stderr``, ``exit`` (written atomically).

An *orphan* is a run still going whose holder is dead (harness was ``kill -9``-ed, or its
host crashed): :func:`find_orphans` lists them in one round trip, :func:`kill_orphans` kills
them (a new lease does, so that a forgotten UNet does not OOM the next run).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from harness import cancel
from harness.device import devshell
from harness.device.device import Device, OutputCallback, split_lines
from harness.device.errors import CommandTimeout, DeviceDisconnected, DeviceError
from harness.holder import Holder
from harness.home import safe_name
from harness.logs import get_logger

log = get_logger(__name__)

RUNS_DIR = "/data/local/tmp/.harness/runs"
POLL_MIN_S = 0.02  # first polls come quickly: short steps end in well under a second
# Then back off to this. One poll is one cheap adb round trip (2 ms on loopback, 10-25 ms
# over USB), so ten a second cost little and bound how late an ended step is noticed.
POLL_MAX_S = 0.1
POLL_CHUNK_BYTES = 4 * 1024 * 1024  # the most output one poll brings back per stream
# A poll waits on the phone (checking every POLL_WAIT_STEP_S) up to this long for news — the
# run's end or new output — before it answers: a step's end is noticed within one check
# instead of one host poll interval, in one or two round trips a second instead of ten.
POLL_WAIT_S = 1.0
POLL_WAIT_STEP_S = 0.02
# Once new output is there, the poll waits this many checks more for the rest of its burst
# (the run's end still answers at once): lines reach the host at most ~0.1 s later.
POLL_SETTLE_CHECKS = 5
STATUS_PREFIX = "@@harness-status "
PRELUDE_END = "@@harness-prelude-end"
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


def wait_command(run_dir: str, out_offset: int, err_offset: int, wait_s: float) -> str:
    """Wait on the phone (at most ``wait_s``) while the run goes on with no new output."""
    d = devshell.quote(run_dir)
    checks = max(0, int(wait_s / POLL_WAIT_STEP_S))
    if checks == 0:
        return ""

    def size(name: str) -> str:  # "" when the file is not there yet: $((+0)) is 0
        return f"$(( $(wc -c 2>/dev/null < {d}/{name}) + 0 ))"

    # n counts the checks since news came: a burst of lines comes back in one answer.
    return (
        f"p=$(cat {d}/pid 2>/dev/null); i=0; n=0; while [ $i -lt {checks} ] "
        f"&& [ $n -lt {POLL_SETTLE_CHECKS} ] && [ ! -f {d}/exit ] && kill -0 \"$p\" "
        f"2>/dev/null; do if [ $n -gt 0 ] || [ {size('stdout')} -ne {out_offset} ] "
        f"|| [ {size('stderr')} -ne {err_offset} ]; then n=$((n+1)); fi; "
        f"sleep {POLL_WAIT_STEP_S:g}; i=$((i+1)); done; "
    )


def poll_command(run_dir: str, out_offset: int, err_offset: int, wait_s: float = 0.0) -> str:
    """One round trip: a status line then new stdout bytes on stdout, new stderr on stderr;
    with ``wait_s``, first wait on the phone for news (:func:`wait_command`)."""
    d = devshell.quote(run_dir)
    return wait_command(run_dir, out_offset, err_offset, wait_s) + (
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
              name: str = "run", run_id: str = "") -> BackgroundRun:
        """Start ``argv`` detached on the phone; return once its PID is recorded.

        ``run_id`` (the store's id of the harness run, if any) is recorded in ``holder``.
        """
        run, _ = cls.start_after("", "", device, argv, env, cwd, name, run_id)
        assert run is not None  # no prelude: nothing can refuse the start
        return run

    @classmethod
    def start_after(cls, prelude: str, refuse_mark: str, device: Device,
                    argv: devshell.Command, env: Mapping[str, str] | None = None,
                    cwd: str | None = None, name: str = "run",
                    run_id: str = "") -> tuple[BackgroundRun | None, str]:
        """:meth:`start`, after the shell command ``prelude`` in the same round trip: the
        run is not started when ``prelude`` fails (its error is raised) or prints
        ``refuse_mark`` (e.g. a missing input). Returns the run (None: not started) and
        what ``prelude`` printed."""
        run = cls(device, f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(name)[:40]}-"
                          f"{uuid.uuid4().hex[:8]}")
        script = wrapper_script(run.run_dir, argv, env or {}, cwd)
        d = devshell.quote(run.run_dir)
        holder = devshell.quote(holder_text(Holder.me(), run_id, run.started))
        first = ""
        if prelude and len(script) > INLINE_SCRIPT_MAX_BYTES:
            said = device.run(prelude, check=True, timeout=60).out  # before any folder
            if refuse_mark and refuse_mark in said:
                return None, said
            prelude = ""
        elif prelude:
            # $( ) drops the trailing newlines; printf gives one back. The mark line ends it.
            mark = devshell.quote(refuse_mark)
            first = (f"o=$( {prelude} ) || {{ r=$?; printf '%s\\n' \"$o\"; exit $r; }}; "
                     f"printf '%s\\n' \"$o\"; echo {PRELUDE_END}; "
                     + (f"case \"$o\" in *{mark}*) exit 0;; esac; " if refuse_mark else ""))
        if len(script) <= INLINE_SCRIPT_MAX_BYTES:
            # One round trip: create the folder, write the wrapper, launch it, report the PID.
            write = (f"mkdir -p {d} && printf '%s' {holder} > {d}/holder && "
                     f"printf '%s' {devshell.quote(script)} > {d}/run.sh && ")
        else:
            device.run(f"mkdir -p {d} && printf '%s' {holder} > {d}/holder", check=True,
                       timeout=30)
            device.push_bytes(script.encode(), f"{run.run_dir}/run.sh", mode=0o755)
            write = ""
        # Only the setsid command goes to the background: with `a && b && c &` mksh forks a
        # subshell for the whole list that keeps adb's stdout open until c ends (dash execs
        # c in place, which hid this), so the launch would wait for the run.
        launched = device.run(
            f"{first}{write}{{ setsid sh {d}/run.sh < /dev/null > /dev/null 2>&1 & }}; "
            f"i=0; while [ ! -s {d}/pid ] && [ $i -lt 1000 ]; do sleep 0.005; i=$((i+1)); "
            f"done; cat {d}/pid", timeout=30)
        said, text = "", launched.out
        if first:
            head, found, text = launched.out.partition(f"\n{PRELUDE_END}\n")
            if not found:
                launched.check()  # the prelude failed: its error
                raise launched.failed(f"background run {run.run_id}: the command before it "
                                      f"printed no end mark: {launched.err.strip()}")
            said = head + "\n"
            if refuse_mark and refuse_mark in head:
                return None, said
        text = text.strip()
        if not text.isdigit():
            raise launched.failed(f"background run {run.run_id} did not start: "
                                  f"{launched.err.strip() or text or 'no PID'}")
        run.pid = int(text)
        log.debug("%s: background run %s started, pid %s", device.serial, run.run_id, text)
        return run, said

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
            wait_s = POLL_WAIT_S if deadline is None else \
                max(0.0, min(POLL_WAIT_S, deadline - time.monotonic()))
            polled = time.monotonic()
            try:
                result = self.device.run(poll_command(self.run_dir, len(out), len(err),
                                                      wait_s), timeout=60)
            except (DeviceDisconnected, CommandTimeout) as exc:
                log.info("%s: lost run %s (%s); reconnecting", self.device.serial,
                         self.run_id, exc)
                reconnects += 1
                self.device.recover()
                continue
            except DeviceError as exc:
                # Server gone, phone gone: wait (bounded) for it, then follow again.
                log.info("%s: lost run %s (%s); waiting for the phone",
                            self.device.serial, self.run_id, exc)
                reconnects += 1
                self.device.recover()
                continue
            status, _, new_out = result.stdout.partition(b"\n")
            state = status.decode(errors="replace").removeprefix(STATUS_PREFIX).strip()
            out += new_out
            err += result.stderr
            if on_output is not None:
                split_lines(pending["stdout"], new_out, "stdout", on_output)
                split_lines(pending["stderr"], result.stderr, "stderr", on_output)
            more = len(new_out) >= POLL_CHUNK_BYTES or len(result.stderr) >= POLL_CHUNK_BYTES
            if state.startswith("exit ") and not more:
                code_text = state.split()[1] if len(state.split()) > 1 else ""
                code = int(code_text) if code_text.isdigit() else None
                return self._outcome(code, out, err, start, reconnects, pending, on_output)
            if state == "gone" and not more:
                return self._outcome(None, out, err, start, reconnects, pending, on_output,
                                     killed=True)
            if deadline is not None and time.monotonic() > deadline:
                log.info("%s: run %s timed out after %gs%s", self.device.serial,
                            self.run_id, timeout, "; killing it" if kill_on_timeout else "")
                if kill_on_timeout:
                    self.kill()
                return self._outcome(None, out, err, start, reconnects, pending, on_output,
                                     killed=kill_on_timeout, timed_out=True)
            if not more and not new_out and not result.stderr \
                    and time.monotonic() - polled < POLL_MIN_S:
                # The poll did not wait (the run not started yet, or a phone whose shell
                # returned at once): do not spin.
                cancel.sleep(interval)
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


def holder_text(holder: Holder, run_id: str, started: float) -> str:
    """The ``holder`` file: ``key=value`` lines (values never hold a newline)."""
    fields = {"host": holder.host, "pid": str(holder.pid), "start": holder.start,
              "run": run_id, "started": f"{started:.3f}"}
    return "".join(f"{k}={' '.join(v.split())}\n" for k, v in fields.items())


ORPHAN_MARK = "@@harness-live-run "


@dataclass(frozen=True)
class LiveRun:
    """A background run still going on the phone, and who started it (None: unknown)."""

    run_id: str  # the directory name under RUNS_DIR
    pid: int
    holder: Holder | None
    harness_run: str = ""
    started: float | None = None

    def describe(self) -> str:
        who = self.holder.describe() if self.holder else "an unknown harness"
        run = f", harness run {self.harness_run}" if self.harness_run else ""
        return f"{self.run_id} (phone pid {self.pid}, started by {who}{run})"


def live_runs_command() -> str:
    """One round trip: every run with no exit status whose wrapper still runs (checked by
    its command line, so a PID the phone has reused since is not taken for it)."""
    return (
        f"for d in {RUNS_DIR}/*/; do d=${{d%/}}; [ -f \"$d/exit\" ] && continue; "
        "[ -s \"$d/pid\" ] || continue; p=$(cat \"$d/pid\"); "
        "kill -0 \"$p\" 2>/dev/null || continue; "
        "case \"$(tr '\\000' ' ' < /proc/$p/cmdline 2>/dev/null)\" in "
        "*\"${d##*/}\"/run.sh*) ;; *) continue ;; esac; "
        f"echo \"{ORPHAN_MARK}${{d##*/}} $p\"; cat \"$d/holder\" 2>/dev/null; echo; "
        "done; true"
    )


def parse_live_runs(text: str) -> list[LiveRun]:
    runs: list[LiveRun] = []
    current: tuple[str, int] | None = None
    fields: dict[str, str] = {}

    def flush() -> None:
        if current is None:
            return
        holder = None
        if fields.get("pid", "").isdigit():
            holder = Holder(fields.get("host", "?"), int(fields["pid"]), fields.get("start", ""))
        started = None
        with contextlib.suppress(ValueError):
            started = float(fields.get("started", ""))
        runs.append(LiveRun(current[0], current[1], holder, fields.get("run", ""), started))

    for line in text.splitlines():
        if line.startswith(ORPHAN_MARK):
            flush()
            parts = line[len(ORPHAN_MARK):].split()
            current = (parts[0], int(parts[1])) if len(parts) == 2 and parts[1].isdigit() \
                else None
            fields = {}
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
    flush()
    return runs


def find_orphans(device: Device,
                 remote_dead: Callable[[Holder], bool] = lambda holder: False) -> list[LiveRun]:
    """Live runs on the phone whose holder is dead: on this host, its PID is gone or was
    reused; on another host, ``remote_dead(holder)`` says so (e.g. its lease expired).
    Runs of an unknown holder are never taken for orphans."""
    return orphans_among(parse_live_runs(device.run(live_runs_command(), timeout=60).out),
                         remote_dead)


def orphans_among(live: Sequence[LiveRun],
                  remote_dead: Callable[[Holder], bool] = lambda holder: False
                  ) -> list[LiveRun]:
    """:func:`find_orphans` on runs already listed (``live_runs_command`` run as part of
    another command, to save a round trip)."""
    return [r for r in live if r.holder is not None
            and (r.holder.dead_here() if r.holder.local else remote_dead(r.holder))]


def kill_orphans(device: Device, orphans: Sequence[LiveRun]) -> None:
    """Kill each orphan's process tree and mark its directory (``orphan-killed``)."""
    for orphan in orphans:
        run = BackgroundRun(device, orphan.run_id, pid=orphan.pid)
        run.kill()
        device.run(f"date +%s > {devshell.quote(run.run_dir)}/orphan-killed", timeout=30)


__all__ = ["BackgroundRun", "LiveRun", "RunOutcome", "find_orphans", "kill_orphans",
           "live_runs_command", "orphans_among", "parse_live_runs"]
