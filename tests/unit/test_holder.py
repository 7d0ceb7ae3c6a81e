"""Process identities: alive, dead, reused PIDs, other hosts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from harness.holder import Holder, pid_start


def test_me_is_alive_and_survives_a_round_trip() -> None:
    me = Holder.me()
    assert me.pid == os.getpid() and me.local and me.start
    assert not me.dead_here()
    assert Holder.from_dict(me.to_dict()) == me


def test_a_finished_process_is_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert pid_start(proc.pid) is None
    assert Holder(socket.gethostname(), proc.pid, "x:1").dead_here()


def test_a_reused_pid_is_dead_and_other_hosts_are_unknown() -> None:
    assert Holder(socket.gethostname(), os.getpid(), "another-boot:1").dead_here()
    assert not Holder(socket.gethostname(), os.getpid(), "").dead_here()  # start unknown
    assert not Holder("elsewhere", 999999999, "x:1").dead_here()
