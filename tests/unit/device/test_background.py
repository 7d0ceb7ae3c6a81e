"""Background runs: the wrapper and poll commands (run by a real POSIX sh on the host), and
``attach``/``kill`` against the in-memory phone of tests/fakes.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.device import background
from harness.device.background import (
    INLINE_SCRIPT_MAX_BYTES,
    STATUS_PREFIX,
    BackgroundRun,
    RunOutcome,
    poll_command,
    wrapper_script,
)
from harness.device.device import CommandResult
from harness.device.errors import CommandTimeout, DeviceError
from harness.home import safe_name
from tests.fakes import FakeDevice, NotEmulated, Program


def sh(script: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-c", script], capture_output=True, timeout=30, check=False)


# ---- the wrapper, run by a real shell --------------------------------------------------------

def test_wrapper_records_pid_output_and_status(tmp_path: Path) -> None:
    run_dir = str(tmp_path / "run dir")  # a space: every path in the wrapper is quoted
    os.mkdir(run_dir)
    script = wrapper_script(run_dir, ["sh", "-c", 'echo "out $X"; echo err >&2; exit 3'],
                            {"X": "it's $HOME"}, None)
    assert script.startswith("#!/system/bin/sh\n")
    Path(run_dir, "run.sh").write_text(script)
    assert sh(f"sh '{run_dir}/run.sh'").returncode == 0  # the wrapper itself succeeds
    files = {p.name: p.read_text() for p in Path(run_dir).iterdir()}
    assert files["stdout"] == "out it's $HOME\n"
    assert files["stderr"] == "err\n"
    assert files["exit"] == "3\n"
    assert files["pid"].strip().isdigit()
    assert "exit.tmp" not in files and "pid.tmp" not in files  # written, then renamed


def test_wrapper_runs_in_cwd_and_reports_a_missing_one(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for cwd, want_exit, want_out in ((str(work), "0\n", f"{work}\n"),
                                     (str(tmp_path / "absent"), "127\n", None)):
        run_dir = tmp_path / f"run-{want_exit.strip()}"
        run_dir.mkdir()
        (run_dir / "run.sh").write_text(wrapper_script(str(run_dir), ["pwd"], {}, cwd))
        sh(f"sh '{run_dir}/run.sh'")
        assert (run_dir / "exit").read_text() == want_exit
        if want_out is not None:
            assert (run_dir / "stdout").read_text() == want_out
        else:
            assert not (run_dir / "stdout").exists()  # the command never ran


# ---- the poll command, run by a real shell ---------------------------------------------------

def poll(run_dir: Path, out_from: int = 0, err_from: int = 0) -> tuple[str, bytes, bytes]:
    done = sh(poll_command(str(run_dir), out_from, err_from))
    status, _, out = done.stdout.partition(b"\n")
    return status.decode().removeprefix(STATUS_PREFIX), out, done.stderr


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_poll_status_starting_running_gone_exit(tmp_path: Path) -> None:
    assert poll(tmp_path)[0] == "starting"
    (tmp_path / "pid").write_text(f"{os.getpid()}\n")  # this test process: alive
    assert poll(tmp_path)[0] == "running"
    (tmp_path / "pid").write_text(f"{dead_pid()}\n")
    assert poll(tmp_path)[0] == "gone"
    (tmp_path / "exit").write_text("137\n")
    assert poll(tmp_path)[0] == "exit 137"


def test_poll_returns_only_new_bytes_of_each_stream(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_bytes(b"line1\nline2\n")
    (tmp_path / "stderr").write_bytes(b"warn\n")
    (tmp_path / "exit").write_text("0\n")
    status, out, err = poll(tmp_path, 6, 0)
    assert (status, out, err) == ("exit 0", b"line2\n", b"warn\n")
    assert poll(tmp_path, 12, 5)[1:] == (b"", b"")


def test_poll_caps_one_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "POLL_CHUNK_BYTES", 4)
    (tmp_path / "stdout").write_bytes(b"0123456789")
    assert poll(tmp_path, 2, 0)[1] == b"2345"


def test_a_long_poll_waits_on_the_phone_for_new_output(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_bytes(b"old\n")
    writer = subprocess.Popen(["sh", "-c", f"sleep 0.3; echo new >> '{tmp_path}/stdout'; "
                                           "sleep 30"])
    try:
        (tmp_path / "pid").write_text(f"{writer.pid}\n")
        done = sh(poll_command(str(tmp_path), 4, 0, wait_s=20.0))
        status, _, out = done.stdout.partition(b"\n")
        # without the wait the poll would answer at once with nothing new
        assert (status.decode().removeprefix(STATUS_PREFIX), out) == ("running", b"new\n")
    finally:
        writer.kill()
        writer.wait()


def test_a_long_poll_answers_when_the_run_ends_or_is_gone(tmp_path: Path) -> None:
    (tmp_path / "pid").write_text(f"{dead_pid()}\n")  # not running: no wait, no news needed
    assert sh(poll_command(str(tmp_path), 0, 0, wait_s=20.0)).stdout.startswith(
        f"{STATUS_PREFIX}gone\n".encode())
    (tmp_path / "exit").write_text("0\n")
    (tmp_path / "stdout").write_bytes(b"done\n")
    assert sh(poll_command(str(tmp_path), 0, 0, wait_s=20.0)).stdout == \
        f"{STATUS_PREFIX}exit 0\ndone\n".encode()


# ---- attach and kill against the in-memory phone ---------------------------------------------

def start(fake: FakeDevice, program: Program, marker: str = "sdxl_pipeline_run") -> BackgroundRun:
    fake.programs[marker] = program
    return BackgroundRun.start(fake, ["./sdxl_pipeline_run", "20"], env={"A": "1"},
                               cwd="/data/local/tmp", name="sdxl unet/1")


def test_start_launches_the_wrapper_and_records_the_pid() -> None:
    fake = FakeDevice()
    run = start(fake, Program())
    assert run.pid is not None and run.pid in fake.procs
    assert "/" not in run.run_id and run.run_id.split("-")[2] == safe_name("sdxl unet/1")
    assert run.run_dir.startswith(background.RUNS_DIR + "/")
    assert len(fake.commands) == 1  # folder, wrapper and launch: one round trip
    script = fake.files[f"{run.run_dir}/run.sh"].decode()
    assert script == wrapper_script(run.run_dir, ["./sdxl_pipeline_run", "20"], {"A": "1"},
                                    "/data/local/tmp")


def test_a_large_wrapper_is_pushed_not_inlined() -> None:
    fake = FakeDevice()
    fake.programs["sdxl_pipeline_run"] = Program()
    big = "x" * (INLINE_SCRIPT_MAX_BYTES + 1)
    run = BackgroundRun.start(fake, ["./sdxl_pipeline_run"], env={"BIG": big})
    assert big in fake.files[f"{run.run_dir}/run.sh"].decode()
    assert not any(big in c for c in fake.commands)
    assert run.pid in fake.procs


def test_start_without_a_pid_is_an_error() -> None:
    fake = FakeDevice()
    fake.missing_tools.add("setsid")
    with pytest.raises(DeviceError, match=r"did not start: cat: .*/pid: No such file"):
        start(fake, Program())
    fake.missing_tools.clear()
    fake.fail_next(DeviceError("boom", serial=fake.serial))
    with pytest.raises(DeviceError, match="boom"):
        start(fake, Program())
    with pytest.raises(NotEmulated):  # no program: the fake refuses to guess
        BackgroundRun.start(fake, ["true"])


def test_attach_follows_output_to_the_exit_status() -> None:
    fake = FakeDevice()
    run = start(fake, Program([("stdout", b"[SDXL] step 1/2\n[SD"), ("stderr", b"warn\n"),
                               ("stdout", b"XL] step 2/2\ntail without newline")], 3))
    lines: list[tuple[str, str]] = []
    outcome = run.attach(on_output=lambda stream, line: lines.append((stream, line)))
    assert outcome.exit_code == 3 and not outcome.killed and not outcome.timed_out
    assert not outcome.ok and outcome.signal is None
    assert outcome.stdout == b"[SDXL] step 1/2\n[SDXL] step 2/2\ntail without newline"
    assert outcome.stderr == b"warn\n"
    assert lines == [("stdout", "[SDXL] step 1/2"), ("stderr", "warn"),
                     ("stdout", "[SDXL] step 2/2"), ("stdout", "tail without newline")]
    assert fake.kills == []


def test_timeout_kills_the_run_on_the_phone() -> None:
    fake = FakeDevice()
    run = start(fake, Program([("stdout", b"working\n")], exit_code=None))
    outcome = run.attach(timeout=0.0)
    assert outcome.timed_out and outcome.killed and outcome.exit_code is None
    assert fake.kills == [run.pid]
    assert run.pid is not None
    proc = fake.procs[run.pid]
    assert proc.killed and not proc.alive, "the run must not outlive its timeout"


def test_timeout_without_kill_leaves_the_run_alone() -> None:
    fake = FakeDevice()
    run = start(fake, Program(exit_code=None))
    outcome = run.attach(timeout=0.0, kill_on_timeout=False)
    assert outcome.timed_out and not outcome.killed
    assert fake.kills == [] and run.pid is not None and fake.procs[run.pid].alive


def test_attach_survives_disconnects_without_repeating_output() -> None:
    fake = FakeDevice()
    run = start(fake, Program([("stdout", b"a\n"), ("stdout", b"b\n"), ("stdout", b"c\n")]))
    first = run.device.run(poll_command(run.run_dir, 0, 0))  # the phone moves on meanwhile
    assert first.stdout.endswith(b"a\n")
    fake.disconnect_next(2)
    fake.fail_next(CommandTimeout("timeout", serial=fake.serial))
    fake.fail_next(DeviceError("adb server gone", serial=fake.serial))
    outcome = run.attach()
    assert outcome.exit_code == 0 and outcome.ok
    assert outcome.stdout == b"a\nb\nc\n"
    assert outcome.reconnects == 4 and fake.recoveries == 4


def test_a_run_that_dies_without_status_is_reported_killed() -> None:
    fake = FakeDevice()
    run = start(fake, Program([("stdout", b"loading\n")], exit_code=None))
    assert run.pid is not None
    fake.die(run.pid)  # lmkd, or a kill from another shell: the wrapper records nothing
    outcome = run.attach()
    assert outcome.exit_code is None and outcome.killed and not outcome.timed_out
    assert fake.kills == []


def test_output_larger_than_one_poll_is_read_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "POLL_CHUNK_BYTES", 8)
    monkeypatch.setattr("tests.fakes.POLL_CHUNK_BYTES", 8)
    fake = FakeDevice()
    data = b"".join(b"%03d\n" % i for i in range(10))
    run = start(fake, Program([("stdout", data)], 0))
    assert run.attach().stdout == data


def test_kill_reads_the_pid_when_the_handle_was_rebuilt() -> None:
    fake = FakeDevice()
    run = start(fake, Program(exit_code=None))
    again = BackgroundRun(fake, run.run_id)  # after a host restart: only the id is known
    again.kill()
    assert fake.kills == [run.pid]
    BackgroundRun(fake, "no-such-run").kill()  # no pid file: nothing to kill
    assert fake.kills == [run.pid]
    again.cleanup()
    assert not any(p.startswith(run.run_dir) for p in fake.files)


@pytest.mark.parametrize(("code", "killed", "ok", "signal"), [
    (0, False, True, None), (1, False, False, None), (137, False, False, 9),
    (0, True, False, None), (None, True, False, None)])
def test_outcome_properties(code: int | None, killed: bool, ok: bool,
                            signal: int | None) -> None:
    outcome = RunOutcome("r", code, b"", b"", 0.0, killed=killed)
    assert (outcome.ok, outcome.signal) == (ok, signal)


# ---- start_after: a command before the launch, one round trip, run by a real shell ----------

class ShellPhone(FakeDevice):
    """Runs every command in the host's sh (the runs' folder moved under tmp_path)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def run(self, command: object, *args: object, **kwargs: object) -> CommandResult:
        self.lines.append(str(command))
        done = sh(str(command))
        result = CommandResult(self.serial, str(command), done.returncode, done.stdout,
                               done.stderr, 0.0)
        return result.check() if kwargs.get("check") else result


def test_start_after_runs_the_prelude_then_the_step_in_one_round_trip(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "RUNS_DIR", str(tmp_path))
    phone = ShellPhone()
    run, said = BackgroundRun.start_after("echo before; echo 'two words'", "@@stop ", phone,
                                          ["sh", "-c", "echo ran"], name="x")
    assert said == "before\ntwo words\n" and len(phone.lines) == 1
    assert run is not None and run.pid is not None
    assert run.attach(timeout=20).stdout == b"ran\n"


def test_start_after_refuses_when_the_prelude_prints_the_mark_or_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "RUNS_DIR", str(tmp_path))
    phone = ShellPhone()
    run, said = BackgroundRun.start_after("echo '@@stop a'; true", "@@stop ", phone,
                                          ["sh", "-c", "echo ran"], name="x")
    assert (run, said) == (None, "@@stop a\n")
    assert list(tmp_path.iterdir()) == []  # not even its folder
    with pytest.raises(DeviceError, match="exited with 3"):
        BackgroundRun.start_after("echo oops >&2; exit 3", "@@stop ", phone,
                                  ["sh", "-c", "echo ran"], name="x")
    assert list(tmp_path.iterdir()) == []
