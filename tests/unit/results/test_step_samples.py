"""Reading one step's telemetry samples back, by name, in time order."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.recipes.load import render_recipe
from harness.results.step_samples import step_samples
from harness.results.store import Store


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
