"""Asset sync against virtual phones through the real adb server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from harness.assets.errors import InsufficientSpace
from harness.assets.hashcache import HashCache
from harness.assets.sets import AssetEntry, AssetSet
from harness.assets.sync import Syncer, sync_many
from harness.device.device import AdbEndpoint, Device
from harness.errors import UsageError
from tests.helpers import harness
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e


def device_for(sim_farm: SimFarm, profile: str) -> Device:
    record = sim_farm.phone(profile)
    return Device(record.adb_serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port,
                                                 sim_farm.farm.restart_adb, "sim"))


def make_tree(root: Path, files: int = 40) -> Path:
    for i in range(files):
        path = root / f"layer{i % 4}" / f"w{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1000 + i * 37))
    tool = root / "tool.sh"
    tool.write_text("#!/bin/sh\necho tool-ok\n")
    tool.chmod(0o755)
    secret = root / "private.cfg"
    secret.write_text("x=1\n")
    secret.chmod(0o640)
    return root


def one_set(name: str, src: Path, dest: str) -> AssetSet:
    return AssetSet(name, [AssetEntry(src, dest, None)])


@pytest.fixture()
def syncer(sim_farm: SimFarm, tmp_path: Path) -> Syncer:
    return Syncer(device_for(sim_farm, "sm8650-16g"), HashCache(tmp_path / "hashes.sqlite"))


def remote_listing(device: Device, dest: str) -> dict[str, str]:
    out = device.run(f"cd {dest} && find . -type f -exec sha256sum {{}} +", check=True).out
    return {line.split()[1][2:]: line.split()[0] for line in out.splitlines()}


def local_listing(root: Path) -> dict[str, str]:
    from harness.assets.hashcache import sha256_file

    return {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*")
            if p.is_file()}


def test_push_noop_change_and_repair(syncer: Syncer, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "w")
    dest = "/data/local/tmp/synctest/w"
    aset = one_set("synctest", src, dest)
    first = syncer.sync([aset])
    assert len(first.pushed) == first.files_total == 42
    assert remote_listing(syncer.device, dest) == local_listing(src)

    noop = syncer.sync([aset])
    assert noop.pushed == ()
    assert noop.round_trips == 2, "one listing batch per directory depth (2 here)"

    changed = src / "layer1" / "w005.bin"
    changed.write_bytes(b"new content")
    one = syncer.sync([aset])
    assert one.pushed == (f"{dest}/layer1/w005.bin",)
    assert one.round_trips == noop.round_trips + 3, "df, one sync session, one finish"

    syncer.device.run(["rm", f"{dest}/layer2/w006.bin"], check=True)
    syncer.device.run(f"echo tampered >> {dest}/layer3/w007.bin", check=True)
    repaired = syncer.sync([aset])
    assert set(repaired.repaired) == {f"{dest}/layer2/w006.bin", f"{dest}/layer3/w007.bin"}
    assert remote_listing(syncer.device, dest) == local_listing(src)


def test_modes_follow_adbd_and_a_mode_change_is_applied_without_a_push(
        syncer: Syncer, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "m", files=2)
    dest = "/data/local/tmp/synctest/m"
    aset = one_set("modes", src, dest)
    syncer.sync([aset])
    assert syncer.device.run([f"{dest}/tool.sh"]).out == "tool-ok\n"

    def phone_mode(name: str) -> str:
        return syncer.device.run(["stat", "-c", "%a", f"{dest}/{name}"]).out.strip()

    # AOSP adbd copies the owner's bits to group and other: 0640 arrives as 0666.
    assert phone_mode("private.cfg") == "666"
    assert syncer.sync([aset]).pushed == (), "0666 on the phone is what 0640 pushes to"
    (src / "layer0" / "w000.bin").chmod(0o755)  # the user makes a file executable
    changed = syncer.sync([aset])
    assert changed.pushed == ()
    assert changed.chmodded == (f"{dest}/layer0/w000.bin",)
    assert phone_mode("layer0/w000.bin") == "777"
    assert syncer.sync([aset]).changed is False
    (src / "private.cfg").chmod(0o600)  # pushes to the same phone mode: nothing to do
    assert syncer.sync([aset]).chmodded == ()


def test_delete_removes_what_the_set_no_longer_has(syncer: Syncer, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "d", files=4)
    dest = "/data/local/tmp/synctest/d"
    aset = one_set("deltest", src, dest)
    syncer.sync([aset])
    (src / "layer0" / "w000.bin").unlink()
    kept = syncer.sync([aset])
    assert kept.deleted == ()
    assert syncer.device.run(["test", "-f", f"{dest}/layer0/w000.bin"]).exit_code == 0
    gone = syncer.sync([aset], delete=True)
    assert gone.deleted == (f"{dest}/layer0/w000.bin",)
    assert syncer.device.run(["test", "-f", f"{dest}/layer0/w000.bin"]).exit_code == 1


def test_verify_hashes_on_the_phone_and_repairs(syncer: Syncer, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "v", files=6)
    dest = "/data/local/tmp/synctest/v"
    aset = one_set("verifytest", src, dest)
    syncer.sync([aset])
    # Same size, same mtime, different bytes: only hashing can see it.
    target = f"{dest}/layer1/w001.bin"
    size = (src / "layer1" / "w001.bin").stat().st_size
    syncer.device.run(f"touch -r {target} /data/local/tmp/ref && "
                      f"head -c {size} /dev/zero > {target} && touch -r /data/local/tmp/ref "
                      f"{target}", check=True)
    assert syncer.sync([aset]).pushed == ()
    verified = syncer.sync([aset], verify=True)
    assert verified.verified == 8 and verified.mismatched == (target,)
    assert remote_listing(syncer.device, dest) == local_listing(src)


def test_full_disk_phone_gets_a_clear_error_and_nothing(sim_farm: SimFarm, tmp_path: Path) -> None:
    record = sim_farm.farm.add_phone("tiny-disk")
    try:
        device = Device(record.adb_serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
        big = tmp_path / "big"
        big.mkdir()
        (big / "weights.bin").write_bytes(os.urandom(80 * 1024 * 1024))
        with pytest.raises(InsufficientSpace, match=r"needs 83\.9 MB on /data .*short by"):
            Syncer(device, HashCache(tmp_path / "h.sqlite")).sync(
                [one_set("big", big, "/data/local/tmp/big")])
        listing = device.run("find /data/local/tmp -type f", check=True).out
        assert "weights.bin" not in listing
    finally:
        sim_farm.farm.remove_phone(record.serial)


def test_path_escapes_are_refused(tmp_path: Path) -> None:
    from harness.assets.sets import load_asset_sets

    (tmp_path / "src").mkdir()
    (tmp_path / "outside.txt").write_text("secret")
    (tmp_path / "src" / "link").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(UsageError, match="symlink escaping"):
        from harness.assets.sync import scan_set

        scan_set(one_set("esc", tmp_path / "src", "/data/local/tmp/esc"),
                 HashCache(tmp_path / "h.sqlite"))
    for bad_dest in ("/data/local/tmp/../../system/bin/x", "/system/bin/x", "../x"):
        recipes = tmp_path / f"r{abs(hash(bad_dest))}"
        recipes.mkdir()
        (recipes / "assets.yaml").write_text(
            f"sets:\n  evil:\n    entries:\n      - {{src: {tmp_path / 'src'}, dest: '{bad_dest}'}}\n")
        with pytest.raises(Exception, match=r"assets.yaml:4"):
            load_asset_sets([recipes])


def test_two_phones_in_parallel(sim_farm: SimFarm, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "p", files=20)
    dest = "/data/local/tmp/synctest/p"
    devices = [device_for(sim_farm, "sm8650-16g"), device_for(sim_farm, "sm8550-12g")]
    results = sync_many(devices, [one_set("par", src, dest)])
    assert [len(r.pushed) for r in results] == [22, 22]
    for device in devices:
        assert remote_listing(device, dest) == local_listing(src)


def test_killed_push_leaves_no_partial_file_and_the_rerun_completes(
        sim_farm: SimFarm, tmp_path: Path) -> None:
    device = device_for(sim_farm, "sm8550-12g")
    src = tmp_path / "k"
    src.mkdir()
    with (src / "huge.bin").open("wb") as fh:
        for _ in range(300):
            fh.write(os.urandom(1 << 20))
    dest = "/data/local/tmp/synctest/k"
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from harness.assets.sets import AssetEntry, AssetSet\n"
        "from harness.device.device import AdbEndpoint, Device\n"
        "from harness.assets.sync import Syncer\n"
        f"d = Device({device.serial!r}, AdbEndpoint('127.0.0.1', {sim_farm.state.adb_port}))\n"
        f"Syncer(d).sync([AssetSet('k', [AssetEntry(Path({str(src)!r}), {dest!r}, None)])])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while True:
            out = device.run("find /data/local/tmp/synctest -path '*.harness-tmp-*' -type f "
                             "-exec stat -c %s {} + 2>/dev/null").out.split()
            if out and int(out[0]) > 10 * 1024 * 1024:
                break
            assert time.monotonic() < deadline and proc.poll() is None, "push never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert device.run(["test", "-e", f"{dest}/huge.bin"]).exit_code == 1, \
        "an interrupted push must never leave a file under its final name"
    result = Syncer(device, HashCache(tmp_path / "h.sqlite")).sync(
        [one_set("k", src, dest)])
    assert result.pushed == (f"{dest}/huge.bin",)
    assert device.run(["ls", "-A", dest]).out.split() == ["huge.bin"]
    siblings = device.run(["ls", "-A", "/data/local/tmp/synctest"]).out.split()
    assert not [n for n in siblings if ".harness-tmp-" in n], "stale temporaries are removed"
    assert remote_listing(device, dest) == local_listing(src)


def test_push_and_status_commands(sim_farm: SimFarm, tmp_path: Path) -> None:
    serial = sim_farm.phone("sm8475-8g").adb_serial
    farm = tmp_path / "farm.yaml"
    farm.write_text(f"servers: [{{name: sim, port: {sim_farm.state.adb_port}}}]\nsim: false\n"
                    .replace("name: sim", "name: simfarm"))
    # Other tests may have synced the set to this phone already: start from its absence.
    sim_farm.device(sim_farm.phone("sm8475-8g")).shell("rm -rf /data/local/tmp/sd15_clml")
    before = json.loads(harness("assets", "status", "sd15-weights", "-d", serial,
                                "--farm", str(farm), "--json").stdout)
    assert before[0]["status"] in ("missing", "stale")
    pushed = harness("push", "sd15-weights", "sd15-binary", "-d", serial, "--farm", str(farm),
                     "--json")
    assert pushed.returncode == 0, pushed.stderr
    rows = json.loads(pushed.stdout)
    assert rows[0]["files_total"] >= 2
    after = json.loads(harness("assets", "status", "sd15-weights", "-d", serial,
                               "--farm", str(farm), "--json").stdout)
    assert after[0]["status"] == "present"
    again = harness("push", "sd15-weights", "-d", serial, "--farm", str(farm))
    assert "up to date" in again.stdout and "2 adb round trip" in again.stdout
    bad = harness("push", "sd15-weightz", "-d", serial, "--farm", str(farm))
    assert bad.returncode == 2
    assert "did you mean 'sd15-weights'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_second_run_pushes_nothing(sim_farm: SimFarm, tmp_path: Path) -> None:
    serial = sim_farm.phone("sm8650-16g").adb_serial
    farm = tmp_path / "farm.yaml"
    farm.write_text(f"servers: [{{name: simfarm, port: {sim_farm.state.adb_port}}}]\n"
                    "sim: false\n")

    def run() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", "sdxl-1024", "-d", serial, "--farm",
             str(farm), "--db", str(tmp_path / "r.sqlite"), "--set", "steps=4"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=os.environ.copy())
        assert result.returncode == 0, result.stderr
        return result.stderr

    run()
    second = run()
    assert "assets: 0 file(s) pushed" in second, second


def test_an_up_to_date_phone_is_only_read_and_a_phone_to_write_is_held(
        sim_farm: SimFarm, tmp_path: Path) -> None:
    # Issue 12: a no-op push takes no lease (as `adb push --sync` takes none): it only reads
    # the phone. Writes still happen only under the lease, and the lease is taken for every
    # phone that needs writes before any is written.
    from harness.farm.lease import PHONE_LEASE, Lease, LeaseBusy

    src = make_tree(tmp_path / "h", files=12)
    dest = "/data/local/tmp/synctest/held"
    devices = [device_for(sim_farm, "sm8650-16g"), device_for(sim_farm, "sm8550-12g")]
    sets = [one_set("held", src, dest)]
    held: list[list[str]] = []

    @contextlib.contextmanager
    def hold(busy: Sequence[Device]) -> Iterator[None]:
        held.append([d.serial for d in busy])
        with contextlib.ExitStack() as stack:
            for d in busy:
                stack.enter_context(Lease(d.serial, "test", device=d))
            yield

    first = sync_many(devices, sets, hold=hold)
    assert [len(r.pushed) for r in first] == [14, 14]
    assert held == [[d.serial for d in devices]]
    other = devices[0]
    # Another host holds the first phone: up to date, it is still reported so, unheld.
    other.run(f"mkdir -p /data/local/tmp/.harness && {{ echo host=lab-host-2; echo pid=4242; "
              f"echo start=; echo purpose=nightly; echo ttl=60; "
              f"echo heartbeat=$(date +%s); }} > {PHONE_LEASE}", check=True)
    try:
        held.clear()
        again = sync_many(devices, sets, hold=hold)
        assert [r.pushed for r in again] == [(), ()] and held == []
        victim = src / "layer0" / "w000.bin"
        victim.write_bytes(os.urandom(500))
        with pytest.raises(LeaseBusy, match="in use by pid 4242 on lab-host-2"):
            sync_many(devices, sets, hold=hold)
        assert held == [[d.serial for d in devices]]
        for device in devices:  # neither phone was written: the lease came first
            assert remote_listing(device, dest)["layer0/w000.bin"] != \
                local_listing(src)["layer0/w000.bin"]
    finally:
        other.run(f"rm -f {PHONE_LEASE}", check=True)
    done = sync_many(devices, sets, hold=hold)
    assert [r.pushed for r in done] == [(f"{dest}/layer0/w000.bin",)] * 2
    for device in devices:
        assert remote_listing(device, dest) == local_listing(src)
