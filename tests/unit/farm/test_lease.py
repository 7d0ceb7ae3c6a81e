"""The lease record on the phone: parsing, expiry, stale holders, the write command."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.device.errors import DeviceError
from harness.farm.lease import (
    ALSO_MARK,
    LIVE_MARK,
    RECORD_MARK,
    TOOK_MARK,
    Lease,
    parse_phone_lease,
    refresh_phone_lease_command,
    remove_phone_lease_command,
    take_phone_lease_command,
    write_phone_lease_command,
)
from harness.holder import Holder


def record(now: int, heartbeat: int, host: str = "lab2", pid: int = 42) -> str:
    return (f"{RECORD_MARK}{now}\nhost={host}\npid={pid}\nstart=\npurpose=bench\nttl=60\n"
            f"heartbeat={heartbeat}\n")


def test_fresh_record_is_live_expired_one_is_stale() -> None:
    live = parse_phone_lease(record(1000, 990))
    assert live is not None and not live.expired and not live.stale()
    assert "pid 42 on lab2 (bench), last heartbeat 10s ago" in live.describe()
    old = parse_phone_lease(record(1000, 900))
    assert old is not None and old.expired and old.stale()


def test_a_record_of_a_dead_process_on_this_host_is_stale_at_once() -> None:
    dead = parse_phone_lease(record(1000, 999, socket.gethostname(), 999999999))
    assert dead is not None and not dead.expired and dead.stale()
    mine = parse_phone_lease(record(1000, 999, socket.gethostname(), os.getpid()))
    assert mine is not None and not mine.stale()


def test_no_record_or_a_torn_one_is_none() -> None:
    assert parse_phone_lease(f"{RECORD_MARK}1000\n") is None
    assert parse_phone_lease(f"{RECORD_MARK}1000\nhost=x\npid=4\n") is None  # no heartbeat
    assert parse_phone_lease("host=x\npid=4\nheartbeat=3\n") is None  # no phone clock


def test_write_is_atomic_quoted_and_remove_checks_the_owner(tmp_path: Path) -> None:
    me = Holder("h'ost", 7, "b:1")
    write = write_phone_lease_command(me, "run $(touch pwned)", 60)
    assert "mv " in write
    local = write.replace("/data/local/tmp/.harness", str(tmp_path / "h"))
    subprocess.run(["sh", "-c", local], check=True, cwd=tmp_path)
    text = (tmp_path / "h" / "lease").read_text()
    found = parse_phone_lease(f"{RECORD_MARK}{int(time.time())}\n{text}")
    assert found is not None and found.holder == me and found.purpose == "run $(touch pwned)"
    assert not found.stale() or found.holder.dead_here()
    assert not (tmp_path / "pwned").exists()
    other = remove_phone_lease_command(Holder("h'ost", 8, ""))
    subprocess.run(["sh", "-c", other.replace("/data/local/tmp/.harness", str(tmp_path / "h"))],
                   check=True)
    assert (tmp_path / "h" / "lease").exists()  # not ours: kept
    mine = remove_phone_lease_command(me)
    subprocess.run(["sh", "-c", mine.replace("/data/local/tmp/.harness", str(tmp_path / "h"))],
                   check=True)
    assert not (tmp_path / "h" / "lease").exists()


def test_the_heartbeat_rewrites_only_a_record_still_ours(tmp_path: Path) -> None:
    """A heartbeat that lands after the release must not bring the record back, and one of
    a holder whose lease expired must not take the phone back from its new holder."""
    me, other = Holder("h'ost", 7, "b:1"), Holder("elsewhere", 9, "c:2")

    def sh(command: str) -> None:
        subprocess.run(["sh", "-c", command.replace("/data/local/tmp/.harness",
                                                    str(tmp_path / "h"))], check=True)

    lease = tmp_path / "h" / "lease"
    sh(refresh_phone_lease_command(me, "run", 60))
    assert not lease.exists()  # released: stays gone
    sh(write_phone_lease_command(other, "theirs", 60))
    sh(refresh_phone_lease_command(me, "run", 60))
    assert "pid=9\n" in lease.read_text()  # theirs: kept
    sh(write_phone_lease_command(me, "run", 60))
    before = lease.read_text()
    sh(refresh_phone_lease_command(me, "run $(touch pwned)", 60))
    after = lease.read_text()
    assert "purpose=run $(touch pwned)" in after and before != after  # ours: rewritten
    assert not (tmp_path / "pwned").exists()


def test_the_shared_lock_dir_refuses_a_planted_symlink(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_LEASE_DIR", str(tmp_path / "leases"))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "leases").mkdir()
    (tmp_path / "leases" / "PHONE9.lock").symlink_to(victim)
    with pytest.raises(DeviceError, match="cannot open the lease file"):
        Lease("PHONE9").acquire()
    assert victim.read_text() == "precious"
    with Lease("PHONE2"):
        assert oct((tmp_path / "leases" / "PHONE2.lock").stat().st_mode & 0o777) == "0o666"


def _take(tmp_path: Path, me: Holder, force: bool = False, also: str = "") -> str:
    command = take_phone_lease_command(me, "run $(touch pwned)", 60, force=force, also=also)
    local = command.replace("/data/local/tmp/.harness", str(tmp_path / "h"))
    return subprocess.run(["sh", "-c", local], check=True, cwd=tmp_path, capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize(("existing", "taken"), [
    (None, True),  # no record
    ("host=lab2\npid=42\nttl=60\nheartbeat={recent}\n", False),  # another host's, live
    ("host=lab2\npid=42\nttl=60\nheartbeat={old}\n", True),  # expired by the phone's clock
    ("host=lab2\npid=42\nttl=900\nheartbeat={old}\n", False),  # its own ttl is longer
    ("host=lab2\npid=42\nheartbeat={old}\n", True),  # no ttl: the default, 60 s
    ("host=h'ost\npid=7\nttl=60\nheartbeat={recent}\n", True),  # our own
    ("host=lab2\npid=x\nheartbeat={recent}\n", True),  # unreadable: no record
    ("garbage", True),
])
def test_the_lease_is_read_written_and_read_back_in_one_shell(
        tmp_path: Path, existing: str | None, taken: bool) -> None:
    me = Holder("h'ost", 7, "b:1")
    lease = tmp_path / "h" / "lease"
    now = int(time.time())
    if existing is not None:
        lease.parent.mkdir()
        lease.write_text(existing.format(recent=now - 5, old=now - 600))
    out = _take(tmp_path, me)
    before, took, after = out.partition(f"\n{TOOK_MARK}\n")
    assert before.startswith(RECORD_MARK)  # the phone's clock, then what was there
    if existing is not None:
        assert existing.format(recent=now - 5, old=now - 600) in before
    assert bool(took) == taken
    assert not (tmp_path / "pwned").exists()
    if taken:
        record_text, live_mark, _ = after.partition(f"{LIVE_MARK}\n")
        mine = parse_phone_lease(record_text)
        assert mine is not None and mine.holder == me and live_mark
        assert lease.read_text() == record_text.split("\n", 1)[1]
    else:
        assert after == "" and lease.read_text() == existing.format(  # type: ignore[union-attr]
            recent=now - 5, old=now - 600)


def test_a_forced_take_writes_over_a_live_looking_record(tmp_path: Path) -> None:
    # The host found the record's holder (of this host) dead: only the host can know that.
    me = Holder("h'ost", 7, "b:1")
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "lease").write_text(f"host=lab2\npid=42\nheartbeat={int(time.time())}\n")
    assert f"\n{TOOK_MARK}\n" in _take(tmp_path, me, force=True)
    found = parse_phone_lease(f"{RECORD_MARK}{int(time.time())}\n"
                              f"{(tmp_path / 'h' / 'lease').read_text()}")
    assert found is not None and found.holder == me


@pytest.mark.parametrize("live_holder", [False, True])
def test_the_callers_also_command_runs_last_and_only_once_the_record_is_ours(
        tmp_path: Path, live_holder: bool) -> None:
    me = Holder("h'ost", 7, "b:1")
    if live_holder:  # another host's live record: nothing is taken, nothing else runs
        (tmp_path / "h").mkdir()
        (tmp_path / "h" / "lease").write_text(
            f"host=lab2\npid=42\nttl=60\nheartbeat={int(time.time())}\n")
    out = _take(tmp_path, me, also="echo temps; echo 41")
    if live_holder:
        assert TOOK_MARK not in out and ALSO_MARK not in out and "temps" not in out
        return
    _, _, after = out.partition(f"\n{TOOK_MARK}\n")
    _, _, live = after.partition(f"{LIVE_MARK}\n")
    assert live.rpartition(f"{ALSO_MARK}\n")[2] == "temps\n41\n"
