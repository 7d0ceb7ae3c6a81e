"""``harness bench`` stopped by SIGINT or SIGTERM leaves the farm as it found it.

The CLI as a subprocess on three virtual phones, interrupted at several moments: while the
phones sync (no step yet), mid-step on every phone, and as a phone is between two runs. After
the exit: the exit status a shell expects, the bench ``interrupted``, no run left
``running``, nothing of the bench's still running on a phone and no lease record left on a
phone (``/data/local/tmp/.harness/lease``: every worker's release reached its phone).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.device.background import live_runs_command, parse_live_runs
from harness.device.device import AdbEndpoint, Device
from harness.farm.lease import read_phone_lease
from tests.e2e.test_bench import THREE, config_file, farm_file, has, rows
from tests.helpers import CLI_TIMEOUT_S, wait_for
from tests.simfarm import SimFarm, phone_runs

pytestmark = pytest.mark.e2e

BINARY = "sd15_pipeline_run"
RECIPE = "  - recipe: sd15-512\n    params: {steps: 8}\n"
# Stopping takes seconds here; far less than the engine's bound for phones that do not
# answer (harness.bench.engine.STOP_WAIT_S), which none of these is.
STOP_TIMEOUT_S = 90.0


def _syncing(db: Path, devices: list[Device]) -> bool:
    """A phone is leased, no run has begun yet (the phones sync and verify their assets)."""
    return any(read_phone_lease(d) is not None for d in devices) and not has(
        db, "SELECT 1 FROM runs")


def _mid_step(db: Path, devices: list[Device]) -> bool:
    """A run has ended (the matrix is under way) and a step runs on every phone."""
    return has(db, "SELECT 1 FROM runs WHERE status = 'ok'") and all(
        phone_runs(d, BINARY) for d in devices)


def _between_runs(db: Path, devices: list[Device]) -> bool:
    """A run has ended and some phone has no step running (between two of its runs)."""
    return has(db, "SELECT 1 FROM runs WHERE status = 'ok'") and any(
        not phone_runs(d, BINARY) for d in devices)


MOMENTS: dict[str, Callable[[Path, list[Device]], bool]] = {
    "syncing": _syncing, "mid-step": _mid_step, "between-runs": _between_runs}


def ours_on(device: Device, pid: int) -> list[str]:
    """Background runs the bench process ``pid`` started that still run on the phone."""
    live = parse_live_runs(device.run(live_runs_command(), timeout=30).out)
    return [r.describe() for r in live if r.holder is not None and r.holder.pid == pid]


@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_stopped_bench_leaves_every_phone_idle_and_free(
        tmp_path: Path, sim_farm: SimFarm, signum: int, code: int, moment: str) -> None:
    phones = [sim_farm.phone(p) for p in THREE]
    farm = farm_file(tmp_path, sim_farm, {p.adb_serial: "stop" for p in phones})
    config = config_file(tmp_path, "stop", "stop", RECIPE, repeat=4)
    db = tmp_path / "s.sqlite"
    devices = [Device(p.adb_serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
               for p in phones]
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "harness.cli", "-v", "bench", "--config",
                             str(config), "--farm", str(farm), "--db", str(db)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        reached = MOMENTS[moment]
        wait_for(lambda: reached(db, devices) or proc.poll() is not None, timeout_s=90)
        assert proc.poll() is None, "the bench ended before it could be interrupted"
    finally:
        proc.send_signal(signum)
    try:
        _out, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # -X faulthandler: every thread's stack to stderr
        _out, err = proc.communicate(timeout=CLI_TIMEOUT_S)
        pytest.fail(f"still running {STOP_TIMEOUT_S:g} s after {signal.Signals(signum).name}:"
                    f"\n{err[-20000:]}")
    tail = err[-6000:]
    assert proc.returncode == code, tail
    ((status,),) = rows(db, "SELECT status FROM benches")
    assert status == "interrupted", tail
    assert not rows(db, "SELECT id FROM runs WHERE status = 'running'"), tail
    # A run cut short is ``interrupted``, never ``failed`` (as a lost connection would be):
    # no phone failed here.
    assert not rows(db, "SELECT id, diagnosis FROM runs WHERE status = 'failed'"), tail
    assert not rows(db, "SELECT 1 FROM bench_events WHERE kind = 'lost'"), tail
    for device in devices:
        assert phone_runs(device, BINARY) == [], (device.serial, tail)
        assert ours_on(device, proc.pid) == [], (device.serial, tail)
        lease = read_phone_lease(device)
        assert lease is None, (device.serial, lease.describe() if lease else "", tail)
