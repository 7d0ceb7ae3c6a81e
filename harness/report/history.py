"""The history part of a bench report: series over nights, change points, findings.

All of it comes from :func:`harness.bench.history.analyse` (cut at the reported bench);
this module only turns its dataclasses into the report's (:mod:`harness.report.model`),
which hold plain values and words. A series' change points are its history change points
and, when alerted, tonight's nightly alert (both indices into its nights).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.bench import history as bh
from harness.bench.changepoint import ChangePoint
from harness.report.model import (
    ChangeMark,
    Finding,
    InvalidPoint,
    Night,
    Series,
    SeriesKey,
    Summary,
)
from harness.results.store import Store

WINDOW_NIGHTS = 60  # nights of history a report shows and analyses
VERDICTS = {
    "regression": "slower: alerted on two nights in a row",
    "improvement": "faster: alerted on two nights in a row",
    "quality": "output changed against the series' reference image",
}


@dataclass(frozen=True)
class HistoryView:
    findings: tuple[Finding, ...]
    series: tuple[Series, ...]
    notes: tuple[str, ...] = ()


def _key(key: bh.SeriesKey) -> SeriesKey:
    return SeriesKey(key.model or "?", key.serial, key.recipe, key.metric, key.variant)


def _mark(cp: ChangePoint, nights: tuple[bh.Night, ...]) -> ChangeMark:
    bench = nights[cp.index].bench_id if 0 <= cp.index < len(nights) else None
    return ChangeMark(cp.index, bench, cp.direction, cp.relative_change, cp.p_value, cp.kind,
                      cp.alerted)


def _series(s: bh.SeriesHistory) -> Series:
    marks = [_mark(cp, s.nights) for cp in s.change_points]
    if s.alert is not None and s.alert.alerted:
        marks.append(_mark(s.alert, s.nights))
    summary = None
    if s.summary is not None:
        m = s.summary
        summary = Summary(m.n, m.median, m.q1, m.q3, m.min, m.max, m.cv, m.robust_cv,
                          m.verdict, m.reason)
    nights = tuple(Night(n.bench_id, n.started_at, tuple(n.valid),
                         tuple(InvalidPoint(run, value, reason)
                               for run, value, reason in n.invalid)) for n in s.nights)
    return Series(_key(s.key), nights, tuple(marks), summary)


def _finding(f: bh.Finding) -> Finding:
    return Finding(_key(f.key), f.kind, VERDICTS.get(f.kind, f.kind), f.median_before,
                   f.median_after, f.relative_change, f.p_value, f.last_good_bench,
                   f.first_bad_bench, tuple(f.changes), f.detail)


def history_view(store: Store, bench_id: str, *, max_nights: int = WINDOW_NIGHTS
                 ) -> HistoryView:
    analysis = bh.analyse(store, bench_id=bench_id, max_nights=max_nights)
    notes = []
    if analysis.more_repeats:
        runs = sum(analysis.more_repeats.values())
        names = ", ".join(k.label() for k in sorted(analysis.more_repeats)[:5])
        notes.append(f"{len(analysis.more_repeats)} series looked suspicious tonight without "
                     f"an alert; {runs} more runs would settle them ({names}"
                     f"{', ...' if len(analysis.more_repeats) > 5 else ''}).")
    return HistoryView(tuple(_finding(f) for f in analysis.findings),
                       tuple(_series(s) for s in analysis.series), tuple(notes))
