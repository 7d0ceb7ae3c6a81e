"""The report's read-only queries: benches by prefix, events, bench runs, samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.results.query import (
    bench_events,
    bench_run,
    bench_runs,
    get_bench,
    last_bench,
    list_benches,
    samples,
)
from harness.results.store import Store
from tests.reportdb import build


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("q") / "r.sqlite", nights=3, runs=2).path


def test_benches_newest_first_and_by_prefix(db: Path) -> None:
    with Store.open(db) as store:
        benches = list_benches(store)
        assert [b.started_at for b in benches] == sorted((b.started_at for b in benches),
                                                         reverse=True)
        newest = last_bench(store)
        assert newest == benches[0] and newest.config["repeats"] == 2
        assert get_bench(store, newest.id[:18].lower()) == newest
        with pytest.raises(UsageError, match="ambiguous"):
            get_bench(store, newest.id[:2])
        with pytest.raises(UsageError, match="empty bench id"):
            get_bench(store, "  ")


def test_events_runs_and_samples(db: Path) -> None:
    with Store.open(db) as store:
        newest = last_bench(store)
        assert newest is not None
        [event] = bench_events(store, newest.id)
        assert event.kind == "lost" and event.detail and "offline" in event.detail["reason"]
        runs = bench_runs(store, newest.id)
        assert len(runs) == 15 and sum(r.warmup for r in runs) == 5
        assert all(r.provenance and "asset_sets" in r.provenance for r in runs)
        measured = next(r for r in runs if r.metrics)
        assert all("/" in name for name in measured.metrics)
        assert bench_run(store, measured.run.id[:20]).metrics == measured.metrics
        timeline = samples(store, measured.run.id)
        assert timeline and all(
            [t for t, _ in pts] == sorted(t for t, _ in pts)
            for names in timeline.values() for pts in names.values())
        assert samples(store, "NO-SUCH-RUN") == {}


def test_empty_store(tmp_path: Path) -> None:
    with Store.open(tmp_path / "e.sqlite") as store:
        assert last_bench(store) is None and list_benches(store) == []
        with pytest.raises(UsageError, match="no bench"):
            get_bench(store, "01ABC")
