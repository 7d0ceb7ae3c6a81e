"""A failed push never leaves the phone full, and --verify reads the phone's sha256sum right.

Real adb server, virtual phones (``tiny-disk``: a 64 MB /data tmpfs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.assets.errors import InsufficientSpace, SyncError
from harness.assets.hashcache import HashCache
from harness.assets.sets import AssetEntry, AssetSet
from harness.assets.sync import TMP_MARK, SetPlan, Syncer
from harness.device.device import AdbEndpoint, Device
from harness.farm.doctor import check_temporaries
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e

SMALL_FILES = 18_000  # 10 bytes each: 180 kB of data, but 18,000 4 KiB blocks (72 MB)


def one_set(name: str, src: Path, dest: str) -> AssetSet:
    return AssetSet(name, [AssetEntry(src, dest, None)])


def small_tree(root: Path, count: int, size: int = 10) -> Path:
    for i in range(count):
        path = root / f"d{i % 50:02d}" / f"f{i:05d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    return root


def temporaries(device: Device) -> list[str]:
    out = device.run(f"find /data/local/tmp -name '*{TMP_MARK}*' 2>/dev/null; true").out
    return out.split()


def free_kb(device: Device) -> int:
    return int(device.run("df -k /data/local/tmp | tail -n 1", check=True).out.split()[3])


@pytest.fixture()
def tiny(sim_farm: SimFarm) -> Iterator[Device]:
    record = sim_farm.farm.add_phone("tiny-disk")
    try:
        yield Device(record.adb_serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    finally:
        sim_farm.farm.remove_phone(record.serial)


class _NoSpaceCheck(Syncer):
    """The old, too optimistic estimate: the push starts and the disk fills mid-way."""

    def _check_space(self, plans: object, space: object) -> None:
        return None


def test_many_small_files_are_refused_by_block_count(tiny: Device, tmp_path: Path) -> None:
    src = small_tree(tmp_path / "small", SMALL_FILES)
    with pytest.raises(InsufficientSpace, match=r"4096-byte blocks"):
        Syncer(tiny, HashCache(tmp_path / "h.sqlite")).sync(
            [one_set("small", src, "/data/local/tmp/small")])
    assert temporaries(tiny) == []


def test_a_push_that_fills_the_disk_cleans_up_and_the_next_push_works(
        tiny: Device, tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "h.sqlite")
    before = free_kb(tiny)
    src = small_tree(tmp_path / "small", SMALL_FILES)
    with pytest.raises(SyncError):
        _NoSpaceCheck(tiny, cache).sync([one_set("small", src, "/data/local/tmp/small")])
    assert temporaries(tiny) == [], "the failed push removed its temporaries"
    assert free_kb(tiny) >= before - 64, "the disk is as free as before the push"
    other = small_tree(tmp_path / "other", 5, size=1000)
    result = Syncer(tiny, cache).sync([one_set("other", other, "/data/local/tmp/other")])
    assert len(result.pushed) == 5


def test_stale_temporaries_of_a_dead_push_are_removed_before_the_space_check(
        tiny: Device, tmp_path: Path) -> None:
    # What a push killed with SIGKILL leaves: a staged folder that fills /data.
    tiny.run(f"mkdir -p /data/local/tmp/w{TMP_MARK}dead && "
             f"dd if=/dev/zero of=/data/local/tmp/w{TMP_MARK}dead/big bs=1048576 count=40 "
             "2>/dev/null", check=True)
    findings = check_temporaries(tiny.serial, tiny)
    assert findings[0].level.value == "warn"
    assert "41943040 bytes" in findings[0].message
    src = small_tree(tmp_path / "set", 3, size=12 * 1024 * 1024)  # 36 MB: fits only if freed
    result = Syncer(tiny, HashCache(tmp_path / "h.sqlite")).sync(
        [one_set("other-set", src, "/data/local/tmp/other-set")])
    assert len(result.pushed) == 3
    assert temporaries(tiny) == []
    assert "0 bytes" in check_temporaries(tiny.serial, tiny)[0].message


def _remote_file(device: Device, path: str) -> bytes:
    return device.run(["cat", path], check=True).stdout


def test_verify_reads_escaped_names_and_reports_the_repair(sim_farm: SimFarm,
                                                           tmp_path: Path) -> None:
    record = sim_farm.phone("sm8550-12g")
    device = Device(record.adb_serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    src = tmp_path / "bs"
    src.mkdir()
    (src / "back\\slash.bin").write_bytes(os.urandom(5000))
    (src / "plain.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    dest = "/data/local/tmp/verifybs"
    aset = one_set("verifybs", src, dest)
    syncer = Syncer(device, HashCache(tmp_path / "h.sqlite"))
    syncer.sync([aset])
    clean = syncer.sync([aset], verify=True)
    assert clean.verified == 2 and clean.mismatched == (), "a backslash is not a mismatch"
    assert clean.pushed_bytes == 0
    target = f"{dest}/plain.bin"
    device.run(f"touch -r {target} {dest}.ref && head -c {3 * 1024 * 1024} /dev/zero > "
               f"{target} && touch -r {dest}.ref {target} && rm {dest}.ref", check=True)
    repaired = syncer.sync([aset], verify=True)
    assert repaired.mismatched == (target,)
    assert repaired.pushed_bytes == 3 * 1024 * 1024, "the repair's bytes are reported"
    assert repaired.seconds > clean.seconds / 10
    assert _remote_file(device, target) == (src / "plain.bin").read_bytes()


def test_run_verify_repairs_same_size_corruption(sim_farm: SimFarm, tmp_path: Path) -> None:
    serial = sim_farm.phone("sm8475-8g").adb_serial
    farm = tmp_path / "farm.yaml"
    farm.write_text(f"servers: [{{name: virtual, port: {sim_farm.state.adb_port}}}]\n"
                    "sim: false\n")

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness.cli", "run", "sd15-512", "-d",
                               serial, "--farm", str(farm), "--db",
                               str(tmp_path / "r.sqlite"), "--json", *extra],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path,
                              env=os.environ.copy())

    assert run().returncode == 0
    device = Device(serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
    binary = "/data/local/tmp/sd15_pipeline_run"
    original = _remote_file(device, binary)
    device.run(f"touch -r {binary} /data/local/tmp/ref && head -c {len(original)} /dev/zero "
               f"> {binary} && touch -r /data/local/tmp/ref {binary}", check=True)
    verified = run("--verify")
    assert verified.returncode == 0, verified.stderr[-2000:]
    assert json.loads(verified.stdout)["status"] == "ok"
    assert _remote_file(device, binary) == original


def test_sim_status_serials_select_phones(sim_farm: SimFarm) -> None:
    from harness.farm.inventory import resolve

    record = sim_farm.phone("sm8650-16g")
    assert [d.serial for d in resolve(record.serial)] == [record.adb_serial]
    assert [d.serial for d in resolve(record.adb_serial)] == [record.adb_serial]


def test_set_plan_space_counts_blocks() -> None:
    from harness.assets.sync import LocalFile, space_needed

    files = [LocalFile("/data/local/tmp/s", f"f{i}", "/x", 10, 0, 0o644, "0" * 64)
             for i in range(100)]
    plan = SetPlan("s", files, push=list(files))
    assert space_needed([plan], 4096) >= 100 * 4096
    assert space_needed([plan], 4096) > space_needed([plan], 1024)
