"""Bench rows in the store: create, events in order, resume rules, the ``last`` baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.results import benches
from harness.results.store import Store


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_events_are_numbered_and_a_live_bench_is_not_taken_over(tmp_path: Path) -> None:
    with Store.open(tmp_path / "r.sqlite") as store:
        with pytest.raises(UsageError, match="no finished bench"):
            benches.get_bench(store, "last")
        bench = benches.create_bench(store, "{}", None, "last")
        benches.add_event(store, bench, "rejected", "A", "sd15-512", {"reason": "RAM"})
        benches.add_event(store, bench, "lost", "B")
        assert [(e["seq"], e["kind"], e["serial"]) for e in benches.events(store, bench)] == [
            (0, "rejected", "A"), (1, "lost", "B")]
        with pytest.raises(UsageError, match="is still running"):
            benches.reopen_bench(store, bench)  # this very process holds it
        benches.finish_bench(store, bench, "interrupted", {"why": "Ctrl-C"})
        assert benches.reopen_bench(store, bench[:12]).id == bench
        assert benches.get_bench(store, bench).status == "running"
        benches.finish_bench(store, bench, "ok", None)
        assert benches.get_bench(store, "last").id == bench
        with pytest.raises(UsageError, match="no bench 'ZZZ'"):
            benches.get_bench(store, "ZZZ")
        with pytest.raises(UsageError, match="bench status"):
            benches.finish_bench(store, bench, "great", None)
