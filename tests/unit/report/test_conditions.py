"""A run's conditions in words, from harness bench's record or an unknown one."""

from __future__ import annotations

from harness.report.conditions import describe
from tests.reportdb import _conditions


def test_bench_record_in_words() -> None:
    lines = describe(_conditions(hot=True))
    assert "thermal status 0 → 3" in lines
    assert "battery 36.2 °C → 33.4 °C" in lines
    assert any(line.startswith("hottest zone") and "(cpu-7-0-0)" in line for line in lines)
    assert "policy7: top 1.40 GHz of 3.30 GHz, capped at 1.40 GHz" in lines
    assert "policy0: top 2.27 GHz of 2.27 GHz" in lines
    assert "waited 12 s to cool first" in lines


def test_unknown_or_broken_records_do_not_fail() -> None:
    assert describe(None) == [] and describe({}) == []
    assert describe({"before": "junk", "clusters": [1, None, {"policy": "p"}],
                     "odd": 3}) == ["p: top – of –", "odd 3"]
