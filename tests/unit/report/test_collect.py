"""The report model from a synthetic nightly: what was planted is what the report holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.report.collect import collect_bench, collect_run, resolve_bench, telemetry_summary
from harness.results.store import Store
from tests.reportdb import BuiltDb, build


def test_the_planted_night(small_nightly: BuiltDb) -> None:
    with Store.open(small_nightly.path) as store:
        report = collect_bench(store, resolve_bench(store, None))
    assert report.bench is not None and report.bench.id == small_nightly.bench_ids[-1]
    serial, recipe, metric = small_nightly.regression
    [regression] = report.regressions
    assert (regression.key.serial, regression.key.recipe, regression.key.metric) == \
        (serial, recipe, metric)
    assert regression.relative_change is not None and 0.05 < regression.relative_change < 0.11
    assert regression.first_bad_bench == small_nightly.bench_ids[-2]
    assert any("sdxl_pipeline_run" in c for c in regression.changes)
    assert [r.id for r in report.failed_runs] == [small_nightly.failed_run]
    assert {r.validity for r in report.invalid_runs} >= {"throttled", "hot-start"}
    assert [(e.serial, e.kind) for e in report.lost] == [("R5CW30SIM0C", "lost")]
    assert len(report.phones) == 3 and all(p.rows for p in report.phones)
    assert len(report.runs) == 30  # 3 phones x 2 recipes x (5 + warm-up), less the lost one
    # Series come from the history: every night of the window, the change point marked.
    flagged = next(s for s in report.series if s.key == regression.key)
    assert len(flagged.nights) == 12 and flagged.change_points
    assert flagged.change_points[-1].bench_id == small_nightly.bench_ids[-2]


def test_an_older_bench_is_reported_as_it_was(small_nightly: BuiltDb) -> None:
    with Store.open(small_nightly.path) as store:
        report = collect_bench(store, resolve_bench(store, small_nightly.bench_ids[5][:20]))
    assert report.bench is not None and report.bench.id == small_nightly.bench_ids[5]
    assert report.regressions == () and report.lost == ()
    assert all(len(s.nights) == 6 for s in report.series)


def test_unknown_and_ambiguous_bench_ids(small_nightly: BuiltDb) -> None:
    with Store.open(small_nightly.path) as store:
        with pytest.raises(UsageError, match="no bench"):
            resolve_bench(store, "ZZZZ")
        with pytest.raises(UsageError, match="ambiguous"):
            resolve_bench(store, "0")


def test_one_run_with_overlay_and_telemetry(tmp_path: Path) -> None:
    built = build(tmp_path / "r.sqlite", nights=2, runs=2, images_dir=tmp_path / "img")
    with Store.open(built.path) as store:
        report = collect_run(store, built.blocks_run[:12])
    [run] = report.runs
    [output] = run.outputs
    assert output.png_path and output.overlay_path
    assert Path(output.overlay_path).name.endswith(".blocks.png")
    assert run.telemetry.samples > 100 and run.telemetry.peak_rss_kb
    assert set(run.telemetry.min_cap_khz) == {"cpu0_max_khz", "cpu7_max_khz"}
    assert run.id in report.timelines


def test_telemetry_summary_of_nothing() -> None:
    summary = telemetry_summary({})
    assert summary.samples == 0 and summary.peak_rss_kb is None and summary.max_temp_c == {}
    summary = telemetry_summary({"a": {"temp_cpu_c": [(0.0, 40.0)], "cpu7_max_khz":
                                       [(0.0, 3e6), (1.0, 1.4e6)]},
                                 "b": {"temp_cpu_c": [(0.0, 45.0)]}})
    assert summary.max_temp_c == {"temp_cpu_c": 45.0}
    assert summary.min_cap_khz == {"cpu7_max_khz": 1.4e6}


def test_table_metrics_are_times_and_a_few_telemetry_figures() -> None:
    from harness.report.collect import table_metric

    assert table_metric("unet/unet.s/step") and table_metric("sd15/total_s")
    assert table_metric("vae/s/it") and table_metric("unet/peak_rss_kb")
    assert not table_metric("vae/iters") and not table_metric("sd15/steps")
    assert not table_metric("unet/samples") and not table_metric("unet/on_charger")
