"""Opt-in checks on a physical phone: ``pytest tests/realphone --real-phone SERIAL``.

They use the adb server that already has the phone (``--real-adb-port``, default 5037) and
only ever touch ``/data/local/tmp/harness-realphone-test`` on the phone, which they remove.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.assets.hashcache import HashCache
from harness.assets.sets import AssetEntry, AssetSet
from harness.assets.sync import Syncer
from harness.device.background import BackgroundRun
from harness.device.device import AdbEndpoint, Device

pytestmark = pytest.mark.realphone

WORK = "/data/local/tmp/harness-realphone-test"


@pytest.fixture(scope="module")
def phone(request: pytest.FixtureRequest) -> Iterator[Device]:
    serial = request.config.getoption("--real-phone")
    port = request.config.getoption("--real-adb-port")
    device = Device(serial, AdbEndpoint("127.0.0.1", port))
    device.run(["mkdir", "-p", WORK], check=True, timeout=30)
    yield device
    device.run(["rm", "-rf", WORK], timeout=60)


def test_facts_are_complete(phone: Device) -> None:
    facts = phone.facts()
    assert facts.model and facts.soc_model and facts.sdk
    assert facts.mem_total_kb and facts.marketed_ram_gb
    assert facts.battery_level is not None and facts.thermal_c


def test_exit_codes_stderr_and_hostile_values(phone: Device) -> None:
    result = phone.run("echo out; echo err >&2; exit 7", timeout=30)
    assert (result.exit_code, result.out, result.err) == (7, "out\n", "err\n")
    hostile = "$(touch pwned) `touch pwned`; touch pwned\n'\""
    echoed = phone.run(["printf", "%s", hostile], env={"H": hostile}, cwd=WORK, timeout=30)
    assert echoed.out == hostile
    assert phone.run(["test", "-e", f"{WORK}/pwned"], timeout=30).exit_code == 1


def test_background_run_and_kill(phone: Device) -> None:
    run = BackgroundRun.start(phone, ["sh", "-c", "echo started; sleep 600"], name="rp")
    run.kill()
    outcome = run.attach(timeout=60)
    assert outcome.stdout.startswith(b"started")
    assert "sleep 600" not in phone.run("ps -A -o ARGS 2>/dev/null || ps", timeout=30).out
    run.cleanup()


def test_sync_round_trip(phone: Device, tmp_path: Path) -> None:
    src = tmp_path / "set"
    for i in range(20):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.bin").write_bytes(os.urandom(10_000 + i))
    aset = AssetSet("realphone-test", [AssetEntry(src, f"{WORK}/set", None)])
    syncer = Syncer(phone, HashCache(tmp_path / "h.sqlite"))
    first = syncer.sync([aset], verify=True)
    assert len(first.pushed) == 20 and first.mismatched == ()
    assert syncer.sync([aset]).pushed == ()
    phone.run(["rm", "-f", "/data/local/tmp/.harness/manifests/realphone-test.json"],
              timeout=30)
