"""``harness bench`` end to end: the CLI as a subprocess, real adb, virtual phones, real store.

The matrix is small (SD1.5 at the session farm's time scale; an SDXL single-process recipe
for the OOM) so that the whole file stays within ~90 s on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.device.device import AdbEndpoint, Device
from harness.sim.state import PhoneState
from tests.helpers import CLI_TIMEOUT_S, harness, wait_for
from tests.simfarm import SimFarm, phone_runs

pytestmark = pytest.mark.e2e

THREE = ("sm8650-16g", "sm8550-12g", "sm8475-8g")
CONFIG = """\
device: tag:{tag}
repeat: {repeat}
warmup: {warmup}
budget_min: 0
thresholds: {{cool_wait_s: 30, offline_wait_s: 2}}
recipes:
{recipes}
"""
TWO_SD15 = """\
  - recipe: sd15-512
    prompt: a lighthouse at dawn
    seed: 3
  - recipe: sd15-512
    name: sd15-10
    params: {steps: 10}
"""


def farm_file(tmp_path: Path, sim_farm: SimFarm, tags: dict[str, str],
              extra: dict[str, str] | None = None) -> Path:
    """A farm file tagging the phones; ``extra``: more keys of a phone's entry (YAML)."""
    path = tmp_path / "farm.yaml"
    more = extra or {}
    devices = ", ".join(f"'{serial}': {{tags: [{tag}]"
                        f"{', ' + more[serial] if serial in more else ''}}}"
                        for serial, tag in tags.items())
    path.write_text(f"servers: [{{name: virtual, port: {sim_farm.state.adb_port}}}]\n"
                    f"sim: false\ndevices: {{{devices}}}\n")
    return path


def config_file(tmp_path: Path, name: str, tag: str, recipes: str, repeat: int = 3,
                warmup: int = 0) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(CONFIG.format(tag=tag, repeat=repeat, warmup=warmup, recipes=recipes))
    return path


def bench(tmp_path: Path, farm: Path, config: Path, db: str, *extra: str
          ) -> tuple[int, dict[str, Any], str]:
    result = harness("bench", "--config", str(config), "--farm", str(farm), "--db",
                     str(tmp_path / db), "--json", "-", *extra, cwd=tmp_path)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return [tuple(r) for r in conn.execute(sql, args)]


def has(db: Path, sql: str, *args: Any) -> bool:
    """Whether ``sql`` finds a row in a database a bench may still be creating."""
    try:
        return db.exists() and bool(rows(db, sql, *args))
    except sqlite3.OperationalError:  # not migrated yet
        return False


def run_set(db: Path) -> set[tuple[Any, ...]]:
    return set(rows(db, "SELECT serial, json_extract(conditions_json, '$.series'), repeat_idx, "
                        "warmup, status, validity FROM runs"))


def test_three_phones_two_recipes_an_oom_and_shards_merged(tmp_path: Path,
                                                           sim_farm: SimFarm) -> None:
    serials = {sim_farm.phone(p).adb_serial: "bench3" for p in THREE}
    big, mid, small = (sim_farm.phone(p).adb_serial for p in THREE)
    farm = farm_file(tmp_path, sim_farm, serials, {small: "current_sign: discharge-positive"})
    oom = "  - recipe: sdxl-1024-single\n    repeat: 1\n"
    config = config_file(tmp_path, "nightly", "bench3", TWO_SD15 + oom, repeat=2)
    code, report, err = bench(tmp_path, farm, config, "all.sqlite")
    assert code == 5, err  # a failed run (the OOM), no regression (no baseline)
    assert report["status"] == "failed" and report["failed_runs"] == 1
    rejected = {(r["serial"], r["series"]): r["reason"] for r in report["rejected"]}
    other = sim_farm.phone("sm8650-24g").adb_serial  # on the farm, not tagged for this bench
    assert rejected.pop((other, "sd15-512")) == "not selected by tag:bench3"
    rejected = {k: v for k, v in rejected.items() if k[0] != other}
    assert rejected == {(mid, "sdxl-1024-single"): "needs 16 GB of RAM, the phone has 12 GB",
                        (small, "sdxl-1024-single"): "needs 16 GB of RAM, the phone has 8 GB"}
    db = tmp_path / "all.sqlite"
    measured = rows(db, "SELECT serial, json_extract(conditions_json, '$.series'), repeat_idx, "
                        "status, validity, validity_reason, provenance_json, conditions_json "
                        "FROM runs WHERE bench_id = ?", report["bench_id"])
    assert len(measured) == 3 * 2 * 2 + 1
    failed = [r for r in measured if r[1] == "sdxl-1024-single"]
    assert [(r[0], r[3], r[4]) for r in failed] == [(big, "failed", "failed")]
    assert "out of memory" in failed[0][5].lower() or "oom" in failed[0][5].lower()
    sd15 = [r for r in measured if r[1] != "sdxl-1024-single"]
    assert {r[3] for r in sd15} == {"ok"}
    assert {r[4] for r in sd15} <= {"valid", "hot-start", "noisy"}
    for serial in (big, mid, small):
        for series in ("sd15-512", "sd15-10"):
            assert sorted(r[2] for r in sd15 if r[0] == serial and r[1] == series) == [0, 1]
    provenance = json.loads(sd15[0][6])
    assert set(provenance["asset_sets"]) == {"sd15-binary", "sd15-weights"}
    assert len(provenance["asset_sets"]["sd15-binary"]["sd15_pipeline_run"]) == 64
    assert provenance["fingerprint"] and provenance["harness_version"]
    conditions = json.loads(sd15[0][7])
    assert conditions["before"]["thermal_status"] == 0
    assert conditions["after"]["battery_level"] is not None
    assert conditions["clusters"] and "seconds_by_khz" in conditions["clusters"][0]
    steps = rows(db, "SELECT COUNT(*) FROM steps s JOIN runs r ON r.id = s.run_id WHERE "
                     "r.bench_id = ?", report["bench_id"])
    assert steps[0][0] >= len(measured)
    by_series = {(s["serial"], s["series"], s["metric"]): s for s in report["series"]}
    total = by_series[(big, "sd15-10", "total_s")]
    assert total["summary"]["n"] == 2 and total["verdict"] == "no baseline"
    # the 10-step entry really ran 10 steps: about half the 20-step time
    assert total["summary"]["median"] < 0.7 * by_series[(big, "sd15-512", "total_s")][
        "summary"]["median"]
    synced = rows(db, "SELECT serial FROM bench_events WHERE kind = 'synced'")
    assert sorted(s for (s,) in synced) == sorted((big, mid, small))  # once per phone
    # the farm file's current_sign reaches that phone's telemetry, and only that phone's
    notes: dict[str, list[str]] = {}
    for serial, run_dir in rows(db, "SELECT serial, run_dir FROM runs WHERE bench_id = ? "
                                    "AND status = 'ok'", report["bench_id"]):
        for log in (tmp_path / run_dir).glob("*.telemetry.log"):
            notes.setdefault(serial, []).extend(
                line for line in log.read_text().splitlines() if "telemetry: current" in line)
    assert notes.get(small) and all("(set)" in n for n in notes[small]), notes
    assert not any("(set)" in n for s, found in notes.items() if s != small for n in found)

    # The same matrix as two shards (two hosts of a CI matrix), merged: the same results.
    env = {**os.environ}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "bench", "--config", str(config), "--farm",
         str(farm), "--db", str(tmp_path / f"shard{i}.sqlite"), "--shard", f"{i}/2"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in (1, 2)]
    for proc in procs:
        proc.wait(timeout=CLI_TIMEOUT_S)
    merged = tmp_path / "merged.sqlite"
    result = harness("results", "merge", str(tmp_path / "shard1.sqlite"),
                     str(tmp_path / "shard2.sqlite"), "-o", str(merged), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    whole = {r for r in run_set(db)}
    assert run_set(merged) == whole
    again = harness("results", "merge", str(tmp_path / "shard1.sqlite"), "-o", str(merged),
                    "--json")
    assert json.loads(again.stdout)["added"]["runs"] == 0


def test_interrupted_then_resumed_without_redoing_finished_runs(tmp_path: Path,
                                                               sim_farm: SimFarm) -> None:
    phones = [sim_farm.phone(p) for p in ("sm8650-16g", "sm8550-12g")]
    farm = farm_file(tmp_path, sim_farm, {p.adb_serial: "resume" for p in phones})
    config = config_file(tmp_path, "resume", "resume", "  - sd15-512\n", repeat=3)
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "bench", "--config",
                             str(config), "--farm", str(farm), "--db", str(db)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    devices = [Device(p.adb_serial, AdbEndpoint("127.0.0.1", sim_farm.state.adb_port))
               for p in phones]
    try:
        wait_for(lambda: has(db, "SELECT 1 FROM runs WHERE status = 'ok' AND validity IS NOT "
                                 "NULL"), timeout_s=60)
        # Mid-step on at least one phone (the other may be between runs).
        wait_for(lambda: any(phone_runs(d, "sd15_pipeline_run") for d in devices),
                 timeout_s=30)
    finally:
        proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    bench_id, status = rows(db, "SELECT id, status FROM benches")[0]
    assert status == "interrupted"
    assert f"harness bench --resume {bench_id}" in err
    assert not rows(db, "SELECT id FROM runs WHERE status = 'running'")
    assert rows(db, "SELECT COUNT(*) FROM runs WHERE status = 'interrupted'")[0][0] >= 1
    for device in devices:  # nothing left running on the phones
        assert phone_runs(device, "sd15_pipeline_run") == []
    before = set(rows(db, "SELECT id FROM runs WHERE status = 'ok' AND validity IS NOT NULL"))
    result = harness("bench", "--resume", bench_id, "--farm", str(farm), "--db", str(db),
                     "--json", "-", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["resumed"] is True
    assert rows(db, "SELECT status FROM benches") == [("ok",)]
    after = set(rows(db, "SELECT id FROM runs WHERE status = 'ok' AND validity IS NOT NULL"))
    assert before <= after  # finished runs kept, not redone
    for record in phones:
        done = rows(db, "SELECT repeat_idx FROM runs WHERE serial = ? AND status = 'ok' AND "
                        "validity IS NOT NULL ORDER BY repeat_idx", record.adb_serial)
        assert [i for (i,) in done] == [0, 1, 2]  # each repeat once


def test_a_phone_lost_mid_bench_is_reported_and_the_others_finish(tmp_path: Path,
                                                                  sim_farm: SimFarm) -> None:
    doomed = sim_farm.farm.add_phone("sm8550-12g")
    try:
        other = sim_farm.phone("sm8475-8g")
        farm = farm_file(tmp_path, sim_farm, {doomed.adb_serial: "lost",
                                              other.adb_serial: "lost"})
        config = config_file(tmp_path, "lost", "lost", "  - sd15-512\n", repeat=3)
        db = tmp_path / "l.sqlite"
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "bench", "--config", str(config), "--farm",
             str(farm), "--db", str(db), "--json", "-"], cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: has(db, "SELECT 1 FROM runs WHERE serial = ? AND status = 'ok'",
                             doomed.adb_serial), timeout_s=60)
        sim_farm.farm.remove_phone(doomed.serial)
        out, err = proc.communicate(timeout=CLI_TIMEOUT_S)
    finally:
        if any(p.serial == doomed.serial for p in sim_farm.phones):
            sim_farm.farm.remove_phone(doomed.serial)
    assert proc.returncode == 5, err
    report = json.loads(out)
    assert list(report["lost"]) == [doomed.adb_serial]
    assert rows(db, "SELECT kind FROM bench_events WHERE serial = ? AND kind = 'lost'",
                doomed.adb_serial) == [("lost",)]
    finished = rows(db, "SELECT COUNT(*) FROM runs WHERE serial = ? AND status = 'ok' AND "
                        "warmup = 0", other.adb_serial)
    assert finished == [(3,)]


def test_a_slower_build_is_a_regression_named_by_its_asset_change(
        tmp_path: Path, sim_farm: SimFarm) -> None:
    from harness.assets.hashcache import sha256_file
    from harness.sim import builds

    record = sim_farm.phone("sm8650-24g")
    farm = farm_file(tmp_path, sim_farm, {record.adb_serial: "build"})
    shipped, recipes = tmp_path / "builds", tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "assets.yaml").write_text(  # sd15-binary from the test's own build folder
        f"sets:\n  sd15-binary:\n    root: {shipped}\n    entries:\n"
        "      - {src: sd15_pipeline_run, dest: /data/local/tmp/sd15_pipeline_run, "
        "mode: '0755'}\n")
    config = config_file(tmp_path, "build", "build",
                         "  - recipe: sd15-512\n    params: {steps: 4}\n", repeat=5)

    def ship(build: builds.Build) -> str:
        (path,) = builds.write_build(shipped, build, ["sd15_pipeline_run"])
        return sha256_file(path)

    old = ship(builds.Build())
    code, _, err = bench(tmp_path, farm, config, "b.sqlite", "--recipes-dir", str(recipes))
    assert code == 0, err
    new = ship(builds.Build(speed=1.10, label="nightly-2"))
    result = harness("bench", "--config", str(config), "--farm", str(farm), "--db",
                     str(tmp_path / "b.sqlite"), "--recipes-dir", str(recipes), "--baseline",
                     "last", "--junit", "night.xml", "--md", "night.md", cwd=tmp_path)
    assert result.returncode == 6, result.stderr  # a regression
    # the reports asked for are written from what the bench stored, the regression in them
    junit = (tmp_path / "night.xml").read_text()
    assert "<failure" in junit and "total_s" in junit
    assert "regress" in (tmp_path / "night.md").read_text().lower()
    assert (f"regression {record.adb_serial} sd15-512 pipeline/total_s: changed: sd15-binary "
            f"changed: sd15_pipeline_run {old[:8]} -> {new[:8]}") in result.stdout
    (summary,) = rows(tmp_path / "b.sqlite", "SELECT summary_json FROM benches WHERE status = "
                                             "'regressed'")
    total = next(s for s in json.loads(summary[0])["series"] if s["metric"] == "total_s")
    assert total["gate"]["effect"] == pytest.approx(0.10, abs=0.03)


def hot_until_synced(phone: PhoneState, celsius: float, db: Path) -> threading.Thread:
    """Keep the phone at ``celsius`` until the bench has synced it (the virtual phone cools
    in a few wall seconds at the tests' time scale): its first run then starts hot."""
    def heat() -> None:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while time.monotonic() < deadline and not has(
                db, "SELECT 1 FROM bench_events WHERE kind = 'synced' AND bench_id = "
                    "(SELECT id FROM benches ORDER BY started_at DESC LIMIT 1) "
                    "AND (SELECT status FROM benches ORDER BY started_at DESC LIMIT 1) = "
                    "'running'"):
            phone.set_temperature(celsius)
            time.sleep(0.02)

    thread = threading.Thread(target=heat, daemon=True)
    thread.start()
    return thread


def test_heat_makes_runs_wait_or_marks_them(tmp_path: Path, sim_farm: SimFarm) -> None:
    record = sim_farm.phone("sm8650-24g")
    farm = farm_file(tmp_path, sim_farm, {record.adb_serial: "heat"})
    phone = PhoneState(Path(record.layout.ctl))
    waiting = config_file(tmp_path, "wait", "heat", "  - sd15-512\n", repeat=1)
    db = tmp_path / "h.sqlite"
    heater = hot_until_synced(phone, 60.0, db)
    code, report, err = bench(tmp_path, farm, waiting, "h.sqlite")
    heater.join()
    assert code == 0, err
    (detail,) = rows(db, "SELECT detail_json FROM bench_events WHERE kind = 'cool-wait'")
    waited = json.loads(detail[0])
    assert waited["waited_s"] > 0 and waited["was_hot"] and waited["still_hot"] == []
    assert [r["validity"] for r in report["runs"]] == ["valid"]  # cool after the wait

    no_wait = tmp_path / "nowait.yaml"
    no_wait.write_text(waiting.read_text().replace("cool_wait_s: 30", "cool_wait_s: 0"))
    heater = hot_until_synced(phone, 95.0, db)
    code, report, err = bench(tmp_path, farm, no_wait, "h.sqlite")
    heater.join()
    assert code == 0, err  # judged, not failed
    (first,) = report["runs"]
    assert first["validity"] in ("throttled", "hot-start")
    (reason,) = rows(db, "SELECT validity_reason FROM runs WHERE id = ?", first["id"])
    assert "°C" in reason[0] or "thermal status" in reason[0]
    hot = next(s for s in report["series"] if s["metric"] == "total_s")
    assert hot["invalid_runs"] == 1 and hot["verdict"] == "no valid runs"  # kept, not averaged
