"""Per-series summaries and the gate: valid measured runs only, outliers marked noisy."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.bench.config import BenchConfig
from harness.bench.summary import Baseline, SeriesKey, judge_series, series_values
from harness.results.benches import BenchRun


def _run(i: int, value: float, validity: str = "valid", warmup: bool = False,
         provenance: dict[str, Any] | None = None) -> BenchRun:
    return BenchRun(f"R{i:03d}", "P1", "sd15-512", "sd15-512", "ok" if validity != "failed"
                    else "failed", validity, i, warmup, float(i), "B",
                    {("pipeline", "total_s"): value, ("pipeline", "steps"): 20.0}, "SM-S9280",
                    provenance)


KEY = SeriesKey("P1", "sd15-512", "pipeline", "total_s")


def test_only_valid_measured_runs_count_and_outliers_are_marked() -> None:
    rng = np.random.default_rng(3)
    values = list(9.2 * (1 + 0.005 * rng.standard_normal(8)))
    runs = [_run(0, 30.0, warmup=True), *(_run(i + 1, v) for i, v in enumerate(values)),
            _run(20, 14.0, "throttled"), _run(21, 0.0, "failed"), _run(22, 12.5)]
    assert len(series_values(runs, KEY)) == 8  # the 12.5 s outlier left out
    rows, noisy = judge_series(runs, {}, BenchConfig())
    assert [(r["step"], r["metric"]) for r in rows] == [("pipeline", "total_s")]  # not steps
    row = rows[0]
    assert row["verdict"] == "no baseline" and row["summary"]["n"] == 8
    assert row["invalid_runs"] == 2 and row["outliers"] == 1
    assert list(noisy) == ["R022"] and "outlier" in noisy["R022"]


def test_a_slowdown_against_the_baseline_is_a_regression() -> None:
    rng = np.random.default_rng(5)
    values = tuple(9.2 * (1 + 0.01 * rng.standard_normal(10)))
    base = Baseline("B0", values, {"asset_sets": {"sd15-binary": {"sd15_pipeline_run": "a" * 64}},
                                   "harness_version": "1", "fingerprint": "f"})
    slow = [_run(i, v) for i, v in enumerate(9.2 * 1.05 * (1 + 0.01 * rng.standard_normal(10)))]
    same = [_run(i, v) for i, v in enumerate(9.2 * (1 + 0.01 * rng.standard_normal(10)))]
    slow = [_run(i, v, provenance={"asset_sets": {"sd15-binary": {"sd15_pipeline_run": "b" * 64}},
                                   "harness_version": "1", "fingerprint": "f"})
            for i, v in enumerate(r.metrics[("pipeline", "total_s")] for r in slow)]
    (row,), _ = judge_series(slow, {KEY: base}, BenchConfig())
    assert row["verdict"] == "regression" and row["baseline"] == "B0"
    assert row["changes"] == ["sd15-binary changed: sd15_pipeline_run aaaaaaaa -> bbbbbbbb"]
    assert judge_series(same, {KEY: base}, BenchConfig())[0][0]["verdict"] in ("same",
                                                                                "unknown")
    fast = [_run(i, v * 0.9) for i, v in enumerate(values)]
    assert judge_series(fast, {KEY: base}, BenchConfig())[0][0]["verdict"] == "improvement"
