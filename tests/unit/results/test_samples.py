"""The samples table writer and reader (schema version 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.recipes.load import render_recipe
from harness.results.samples import SampleRow, record_samples, run_samples
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
