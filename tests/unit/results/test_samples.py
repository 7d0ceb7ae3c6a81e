"""The samples table writer and reader (schema version 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.recipes.load import render_recipe
from harness.results.samples import SampleRow, record_samples, run_samples, step_samples
from harness.results.store import Store


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_samples_round_trip_and_replace(tmp_path: Path) -> None:
    plan = render_recipe("sd15-512")
    with Store.open(tmp_path / "r.sqlite") as store:
        run_id = store.begin_run(plan, serial="x", device={}, run_dir=tmp_path)
        n = record_samples(store, run_id, "pipeline", [(0.0, {"rss_kb": 1.0, "power_w": 2.0}),
                                                       (0.1, {"rss_kb": 3.0})])
        assert n == 3
        record_samples(store, run_id, "pipeline", [(0.1, {"rss_kb": 4.0})])  # replaces
        record_samples(store, run_id, "other", [(0.0, {"rss_kb": 9.0})])
        assert run_samples(store, run_id, "pipeline", "rss_kb") == [
            SampleRow("pipeline", 0.0, "rss_kb", 1.0), SampleRow("pipeline", 0.1, "rss_kb", 4.0)]
        assert len(run_samples(store, run_id)) == 4
        assert run_samples(store, "nosuchrun") == []


def test_step_samples_by_name_in_time_order(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    with Store.open(tmp_path / "r.sqlite") as store:
        run_id = store.begin_run(render_recipe("sd15-512", {}), serial="s")
        rows = [(run_id, "unet", 0.2, "rss_kb", 2.0), (run_id, "unet", 0.1, "rss_kb", 1.0),
                (run_id, "unet", 0.1, "mem_available_kb", 9.0),
                (run_id, "vae", 0.1, "rss_kb", 5.0)]
        store.conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", rows)
        assert step_samples(store, run_id, "unet") == {
            "rss_kb": [(0.1, 1.0), (0.2, 2.0)], "mem_available_kb": [(0.1, 9.0)]}
        assert step_samples(store, run_id, "unet", ["mem_available_kb"]) == {
            "mem_available_kb": [(0.1, 9.0)]}
        assert step_samples(store, run_id, "unet", []) == {}
        assert step_samples(store, run_id, "clip") == {}
