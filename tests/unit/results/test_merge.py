"""Merging results databases: every table, idempotent, the same run twice stored once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.recipes.load import render_recipe
from harness.recipes.plan import Plan
from harness.results import benches
from harness.results.merge import TABLES, merge
from harness.results.schema import MIGRATIONS, migrate
from harness.results.store import OutputRecord, StepRecord, Store, StoreError


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return render_recipe("sd15-512")


def _shard(path: Path, plan: Plan, serial: str, runs: int) -> list[str]:
    ids = []
    with Store.open(path) as store:
        bench = benches.create_bench(store, "{}", "1/2", None)
        benches.add_event(store, bench, "rejected", serial, "sdxl-1024", {"reason": "RAM"})
        for i in range(runs):
            run_id = store.begin_run(plan, serial=serial, bench_id=bench)
            store.record_step(run_id, StepRecord(0, "pipeline", "run", 0, 1.0),
                              {"total_s": 9.0 + i})
            store.record_output(run_id, OutputRecord("pipeline", "image", "/o", "image",
                                                     (1, 3, 8, 8)))
            store.conn.execute("INSERT INTO samples VALUES (?, 'pipeline', 0.5, 'rss_kb', 1)",
                               (run_id,))
            store.finish_run(run_id, "ok")
            benches.annotate_run(store, run_id, validity="valid", reason="ok", repeat_idx=i,
                                 warmup=False, provenance={"fingerprint": "f"},
                                 conditions={"series": "sd15-512"})
            ids.append(run_id)
    return ids


def _count(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def test_merge_copies_every_table_once(tmp_path: Path, plan: Plan) -> None:
    a, b, out = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "all.sqlite"
    ids = _shard(a, plan, "A", 2) + _shard(b, plan, "B", 3)
    result = merge([a, b], out)
    assert result.added == {"benches": 2, "runs": 5, "steps": 5, "metrics": 5, "outputs": 5,
                            "bench_events": 2, "samples": 5}
    assert _count(out) == result.added
    again = merge([a, b, a], out)  # idempotent, and the same run twice is stored once
    assert set(again.added.values()) == {0}
    assert _count(out) == result.added
    with Store.open(out) as store:
        detail = store.get_run(ids[3])
        assert detail.run.serial == "B" and detail.metric("total_s") == 10.0
        row = store.conn.execute("SELECT validity, repeat_idx, provenance_json FROM runs "
                                 "WHERE id = ?", (ids[3],)).fetchone()
        assert tuple(row) == ("valid", 1, '{"fingerprint": "f"}')


def test_an_older_input_is_merged_with_the_columns_it_has(tmp_path: Path, plan: Plan) -> None:
    old = tmp_path / "old.sqlite"
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, MIGRATIONS, target=3)
    conn.execute("INSERT INTO runs (id, recipe, plan_json, params_json, started_at, status) "
                 "VALUES ('01OLD', 'sd15-512', '{}', '{}', 1.0, 'ok')")
    conn.close()
    out = tmp_path / "all.sqlite"
    assert merge([old], out).added["runs"] == 1
    with Store.open(out) as store:
        assert store.conn.execute("SELECT warmup FROM runs").fetchone()[0] == 0


def test_the_output_among_the_inputs_is_skipped_and_a_missing_input_refused(
        tmp_path: Path, plan: Plan) -> None:
    a = tmp_path / "a.sqlite"
    _shard(a, plan, "A", 1)
    assert merge([a], a).inputs == []
    with pytest.raises(StoreError, match="no such results database"):
        merge([tmp_path / "nope.sqlite"], a)
