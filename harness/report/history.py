"""The history part of a bench report: series over nights, change points and findings.

PROVISIONAL until ``harness.bench.history`` is merged: series are read straight from the
store (valid measured runs per night), without change points or findings.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from harness.bench.series import summarize
from harness.report.model import Finding, InvalidPoint, Night, Series, SeriesKey, Summary
from harness.results.query import bench_runs, list_benches
from harness.results.store import Store

WINDOW_NIGHTS = 50


@dataclass(frozen=True)
class HistoryView:
    findings: tuple[Finding, ...]
    series: tuple[Series, ...]
    notes: tuple[str, ...] = ()


def history_view(store: Store, bench_id: str) -> HistoryView:
    benches = [b for b in reversed(list_benches(store)) if b.started_at <= next(
        x.started_at for x in list_benches(store) if x.id == bench_id)][-WINDOW_NIGHTS:]
    nights: dict[SeriesKey, list[Night]] = defaultdict(list)
    for bench in benches:
        values: dict[SeriesKey, list[float]] = defaultdict(list)
        invalid: dict[SeriesKey, list[InvalidPoint]] = defaultdict(list)
        for run in bench_runs(store, bench.id):
            if run.warmup:
                continue
            model = str((run.run.device or {}).get("model") or "?")
            for metric, value in run.metrics.items():
                key = SeriesKey(model, run.run.serial or "?", run.run.recipe, metric)
                if run.validity in (None, "valid") and run.run.status == "ok":
                    values[key].append(value)
                else:
                    invalid[key].append(InvalidPoint(run.run.id, value,
                                                     run.validity_reason or run.run.status))
        for key in set(values) | set(invalid):
            nights[key].append(Night(bench.id, bench.started_at, tuple(values.get(key, ())),
                                     tuple(invalid.get(key, ()))))
    series = []
    for key, items in sorted(nights.items(), key=lambda kv: kv[0].label):
        vals = [v for n in items for v in n.values]
        s = summarize(vals) if vals else None
        summary = None if s is None else Summary(s.n, s.median, s.q1, s.q3, s.min, s.max,
                                                 s.cv, s.robust_cv, s.verdict, s.reason)
        series.append(Series(key, tuple(items), (), summary))
    return HistoryView((), tuple(series), ("history analysis (change points, findings) is "
                                           "not available in this build",))
