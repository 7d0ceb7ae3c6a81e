"""Bench history on the virtual farm: a slower build is flagged and attributed to the right
asset change, and a build that reuses TNN buffers is caught as output drift.

Real adb, a real virtual phone, real runs (``run_recipe``, the library behind ``harness
run``) into a real store; each run is then tagged as ``harness bench`` tags its runs (bench
id, validity, repeat index, provenance: the sha256 of every file of its asset sets and the
phone's build fingerprint). The builds are written by :func:`harness.sim.builds.write_build`
into an asset root of the test's own, which an ``assets.yaml`` in an extra recipes folder
points ``sd15-binary`` at: "shipping" a build is replacing that file, as on a real farm.
To stay short the nightly rule is asked for 3 baseline nights instead of 6
(:class:`ChangePointParams`); the defaults are measured in ``benchmarks/nights.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from harness.assets.hashcache import sha256_file
from harness.assets.sets import load_asset_sets
from harness.bench.changepoint import ChangePointParams
from harness.bench.history import analyse
from harness.results.store import Store
from harness.run.runner import RunRequest, run_recipe
from harness.sim import builds, speed
from tests.helpers import harness
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e

PROMPT = "a lighthouse on a cliff at sunset"
SHORT = ChangePointParams(min_baseline_nights=3)


def provenance(sets: list[Any], fingerprint: str) -> dict[str, Any]:
    """What ``harness bench`` records: set -> {path in the set: sha256}, and the phone."""
    out: dict[str, dict[str, str]] = {}
    for asset_set in sets:
        files = out.setdefault(asset_set.name, {})
        for entry in asset_set.entries:
            paths = sorted(p for p in entry.src.rglob("*") if p.is_file()) \
                if entry.src.is_dir() else [entry.src]
            for path in paths:
                files[str(path.relative_to(asset_set.root))] = sha256_file(path)
    return {"asset_sets": out, "harness_version": "test", "fingerprint": fingerprint}


class Nightly:
    """Nights of one series (sd15-512 on one phone), recorded as a bench records them."""

    def __init__(self, tmp_path: Path, farm: SimFarm, serial: str) -> None:
        self.tmp, self.serial = tmp_path, serial
        self.db = tmp_path / "results.sqlite"
        self.builds = tmp_path / "builds"
        self.recipes = tmp_path / "recipes"
        self.recipes.mkdir()
        (self.recipes / "assets.yaml").write_text(
            "sets:\n  sd15-binary:\n    root: " + str(self.builds) + "\n    entries:\n"
            "      - {src: sd15_pipeline_run, dest: /data/local/tmp/sd15_pipeline_run, "
            "mode: '0755'}\n")
        self.farm_file = tmp_path / "farm.yaml"
        self.farm_file.write_text(
            f"servers: [{{name: virtual, port: {farm.state.adb_port}}}]\nsim: false\n"
            "thermal: {battery_c: 90, cpu_c: 110}\n")
        self.nights: list[str] = []

    def ship(self, build: builds.Build) -> str:
        """Put ``build`` of sd15_pipeline_run in place; return its sha256."""
        path, = builds.write_build(self.builds, build, ["sd15_pipeline_run"])
        return sha256_file(path)

    def night(self, runs: int) -> str:
        bench_id = f"BENCH{len(self.nights):03d}"
        with Store.open(self.db) as store:
            store.conn.execute("INSERT INTO benches (id, started_at, status, config_json) "
                               "VALUES (?, ?, 'running', '{}')", (bench_id, time.time()))
        for repeat in range(runs):
            summary = run_recipe(RunRequest(
                "sd15-512", self.serial, {"prompt": PROMPT, "seed": 7, "steps": 4},
                farm_path=self.farm_file, db_path=self.db, logs_dir=self.tmp / "logs",
                recipes_dirs=(self.recipes,)))
            assert summary.status == "ok", summary.diagnosis
            self.tag(summary.run_id, bench_id, repeat)
        self.nights.append(bench_id)
        return bench_id

    def tag(self, run_id: str, bench_id: str, repeat: int) -> None:
        with Store.open(self.db) as store:
            run = store.get_run(run_id)
            sets = load_asset_sets((self.recipes,))
            used = [sets[name] for name in run.plan["asset_sets"]]
            prov = provenance(used, (run.run.device or {})["fingerprint"])
            store.conn.execute(
                "UPDATE runs SET bench_id = ?, validity = 'valid', warmup = 0, repeat_idx = ?, "
                "provenance_json = ? WHERE id = ?", (bench_id, repeat, json.dumps(prov), run_id))

    def analyse(self) -> Any:
        with Store.open(self.db) as store:
            return analyse(store, params=SHORT)


def test_a_slower_build_is_flagged_and_named_and_tnn_reuse_is_drift(
        tmp_path: Path, sim_farm: SimFarm) -> None:
    nightly = Nightly(tmp_path, sim_farm, sim_farm.phone("sm8650-16g").adb_serial)
    old = nightly.ship(builds.Build())
    for _ in range(3):
        nightly.night(runs=2)
    assert nightly.analyse().findings == ()
    slow = nightly.ship(builds.Build(speed=1.05, label="nightly-2"))
    nightly.night(runs=3)
    assert nightly.analyse().findings == (), "one slow night is not yet an alert"
    nightly.night(runs=3)
    result = nightly.analyse()
    timing = [f for f in result.findings if f.key.metric == "pipeline/total_s"]
    assert [f.kind for f in timing] == ["regression"], result.findings
    finding = timing[0]
    assert (finding.last_good_bench, finding.first_bad_bench) == tuple(nightly.nights[2:4])
    assert finding.changes == (
        f"sd15-binary changed: sd15_pipeline_run {old[:8]} -> {slow[:8]}",)
    assert finding.relative_change == pytest.approx(0.05, abs=0.01)
    assert not any(f.kind == "quality" for f in result.findings)

    tnn = nightly.ship(builds.Build(speed=1.05, tnn_reuse=True, label="nightly-3"))
    tnn_night = nightly.night(runs=1)
    drift = [f for f in nightly.analyse().findings if f.kind == "quality"]
    assert len(drift) == 1, nightly.analyse().findings
    assert drift[0].key.metric == "pipeline/image.ssim"
    assert drift[0].first_bad_bench == tnn_night
    assert drift[0].changes == (
        f"sd15-binary changed: sd15_pipeline_run {slow[:8]} -> {tnn[:8]}",)
    assert drift[0].median_after < 0.98 and "output drifted" in drift[0].detail


def test_an_os_update_shows_in_getprop(tmp_path: Path, sim_farm: SimFarm) -> None:
    record = sim_farm.phone("sm8650-24g")
    before = sim_farm.adb("-s", record.adb_serial, "shell", "getprop", "ro.build.fingerprint",
                          check=True).stdout.decode().strip()
    result = harness("sim", "os-update", record.serial, "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["before"] == before != done["after"]
    after = sim_farm.adb("-s", record.adb_serial, "shell", "getprop", "ro.build.fingerprint",
                         check=True).stdout.decode().strip()
    assert after == done["after"]
    bad = harness("sim", "os-update", "no-such-phone")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_noise_and_nights_are_set_per_phone(sim_farm: SimFarm) -> None:
    record = sim_farm.phone("sm8650-24g")
    ctl = record.layout.ctl
    try:
        assert harness("sim", "noise", "realistic", "--serial", record.serial).returncode == 0
        assert speed.load_noise(ctl) == speed.REALISTIC
    finally:
        assert harness("sim", "noise", "quiet", "--serial", record.serial).returncode == 0
    assert speed.load_noise(ctl) == speed.QUIET
    assert harness("sim", "night", "night-7", "--serial", record.serial).returncode == 0
    assert speed.session_key(ctl) == "night-7"
