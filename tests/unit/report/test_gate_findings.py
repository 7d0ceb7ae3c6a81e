"""The bench's own gate verdicts (its exit code's reason) appear among a report's findings."""

from __future__ import annotations

from harness.report.collect import gate_findings
from harness.report.model import Finding, SeriesKey
from harness.results.query import BenchRecord


def bench(series: list[dict[str, object]]) -> BenchRecord:
    return BenchRecord("B2", 2.0, 3.0, "regressed", {}, None, "last", "host", "0.1",
                       {"series": series})


ROW: dict[str, object] = {"serial": "S1", "model": "SM-S928B", "series": "sd15-512", "step": "pipeline",
       "metric": "total_s", "baseline": "B1", "verdict": "regression",
       "changes": ["sd15-binary changed: sd15_pipeline_run aaaa -> bbbb"],
       "gate": {"verdict": "different", "p_value": 0.004, "effect": 0.1, "median_before": 9.2,
                "median_after": 10.1, "n_before": 5, "n_after": 5}}


def test_a_gate_regression_becomes_a_finding_with_what_changed() -> None:
    (f,) = gate_findings(bench([ROW, {**ROW, "metric": "s/step", "verdict": "same"}]), ())
    assert f.kind == "regression" and f.key.metric == "pipeline/total_s"
    assert (f.median_before, f.median_after, f.p_value) == (9.2, 10.1, 0.004)
    assert f.last_good_bench == "B1" and f.first_bad_bench == "B2"
    assert f.changes == ("sd15-binary changed: sd15_pipeline_run aaaa -> bbbb",)


def test_a_series_the_history_already_named_is_not_repeated() -> None:
    key = SeriesKey("SM-S928B", "S1", "sd15-512", "pipeline/total_s")
    named = Finding(key, "regression", "", 9.2, 10.1, 0.1, 0.001, "B0", "B2")
    assert gate_findings(bench([ROW]), (named,)) == ()


def test_no_summary_no_findings() -> None:
    record = BenchRecord("B", 1.0, None, "interrupted", {}, None, None, None, None, None)
    assert gate_findings(record, ()) == ()
