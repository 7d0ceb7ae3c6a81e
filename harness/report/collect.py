"""Fill the report model from the store: one bench with its history, or one run.

:func:`collect_bench` reads the bench, its runs (steps, outputs, telemetry), its events and
the history analysis of every series it measured (``harness.bench.history``); the per-phone
table summarises tonight's valid runs with :func:`harness.bench.series.summarize`.
:func:`collect_run` is the same view of a single run (``harness runs show ID --html``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.bench.history import is_time_metric
from harness.bench.series import summarize
from harness.report.history import history_view
from harness.report.model import (
    BenchView,
    EventView,
    Finding,
    OutputView,
    Phone,
    PhoneRow,
    Report,
    RunView,
    SeriesKey,
    StepView,
    Telemetry,
    TimelineData,
)
from harness.results.query import (
    BenchRecord,
    BenchRun,
    bench_events,
    bench_run,
    bench_runs,
    get_bench,
    last_bench,
    samples,
)
from harness.results.store import Store


def _overlay(png_path: str | None) -> str | None:
    """The colour-block overlay the runner writes next to an output's PNG, if it exists."""
    if not png_path:
        return None
    overlay = Path(png_path).with_suffix(".blocks.png")
    return str(overlay) if overlay.is_file() else None


def telemetry_summary(timeline: TimelineData) -> Telemetry:
    """The few numbers of a run's telemetry the JSON and the tables carry."""
    def values(name: str) -> list[float]:
        return [v for names in timeline.values() for _, v in names.get(name, [])]

    temps: dict[str, float] = {}
    caps: dict[str, float] = {}
    for names in timeline.values():
        for name, pts in names.items():
            if not pts:
                continue
            if name.startswith("temp_"):
                temps[name] = max(temps.get(name, -1e9), max(v for _, v in pts))
            elif name.startswith("cpu") and name.endswith("_max_khz"):
                caps[name] = min(caps.get(name, 1e18), min(v for _, v in pts))
    mem, rss, power = values("mem_available_kb"), values("rss_kb"), values("power_w")
    return Telemetry(
        samples=sum(len(p) for names in timeline.values() for p in names.values()),
        min_mem_available_kb=min(mem) if mem else None,
        peak_rss_kb=max(rss) if rss else None,
        mean_power_w=sum(power) / len(power) if power else None,
        peak_power_w=max(power) if power else None,
        max_temp_c=dict(sorted(temps.items())), min_cap_khz=dict(sorted(caps.items())))


def run_view(store: Store, run: BenchRun, timeline: TimelineData) -> RunView:
    detail = store.get_run(run.run.id)
    rec = detail.run
    model = (rec.device or {}).get("model")
    return RunView(
        id=rec.id, serial=rec.serial, model=str(model) if model else None, recipe=rec.recipe,
        status=rec.status, validity=run.validity, validity_reason=run.validity_reason,
        repeat_idx=run.repeat_idx, warmup=run.warmup, started_at=rec.started_at,
        seconds=rec.seconds, verdicts=tuple(v for v in (rec.verdict or "").splitlines() if v),
        diagnosis=rec.diagnosis, run_dir=rec.run_dir, metrics=dict(run.metrics),
        steps=tuple(StepView(s.index, s.name, s.exit_code, s.signal, s.seconds, s.diagnosis,
                             s.stdout_tail, s.stderr_tail) for s in detail.steps),
        outputs=tuple(OutputView(o.step, o.name, o.kind, tuple(o.shape), o.png_path,
                                 _overlay(o.png_path), o.nan_count, o.inf_count)
                      for o in detail.outputs),
        conditions=run.conditions, telemetry=telemetry_summary(timeline))


# Telemetry's per-step figures worth a stability column next to the times (harness.run.
# telemetry); counts (steps, iters, samples) are not.
TABLE_TELEMETRY = ("peak_rss_kb", "min_mem_available_kb", "mean_power_w", "energy_j",
                   "max_temp_c")


def table_metric(metric: str) -> bool:
    """Whether ``step/name`` belongs in the per-phone table: a time, or telemetry above."""
    name = metric.split("/", 1)[-1]
    return is_time_metric(name) or name in TABLE_TELEMETRY


def phones_table(runs: Sequence[RunView]) -> tuple[Phone, ...]:
    """Per phone: each recipe x metric (times and a few telemetry figures) of tonight's
    valid measured runs, with its CV."""
    by_phone: dict[str, list[RunView]] = defaultdict(list)
    for r in runs:
        by_phone[r.serial or "?"].append(r)
    phones = []
    for serial, items in sorted(by_phone.items()):
        values: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r in items:
            if r.warmup or r.failed or r.invalid:
                continue
            for metric, value in r.metrics.items():
                if table_metric(metric):
                    values[(r.recipe, metric)].append(value)
        rows = []
        for (recipe, metric), vals in sorted(values.items()):
            s = summarize(vals)
            rows.append(PhoneRow(recipe, metric, s.n, s.median, s.cv, s.robust_cv, s.verdict))
        model = next((r.model for r in items if r.model), None) or "?"
        phones.append(Phone(serial, model, tuple(rows), runs=len(items),
                            failed=sum(r.failed for r in items),
                            invalid=sum(r.invalid for r in items)))
    return tuple(phones)


def resolve_bench(store: Store, bench_id: str | None) -> BenchRecord | None:
    """The bench named (a unique id prefix), or the newest with ``None``."""
    return get_bench(store, bench_id) if bench_id else last_bench(store)


def _bench_view(b: BenchRecord) -> BenchView:
    return BenchView(b.id, b.status, b.started_at, b.ended_at, b.host, b.harness_version,
                     b.shard, b.baseline)


GATE_VERDICTS = {
    "regression": "slower than the baseline bench (pairwise gate)",
    "improvement": "faster than the baseline bench (pairwise gate)",
}


def gate_findings(bench: BenchRecord, history: Sequence[Finding]) -> tuple[Finding, ...]:
    """The bench's own verdicts against its ``--baseline`` (what its exit code says), for the
    series the history over nights did not already name with the same kind."""
    named = {(f.key.serial, f.key.recipe, f.key.metric, f.kind) for f in history}
    found = []
    for row in (bench.summary or {}).get("series", []):
        kind, gate = row.get("verdict"), row.get("gate") or {}
        if kind not in GATE_VERDICTS:
            continue
        key = SeriesKey(row.get("model") or "?", str(row["serial"]), str(row["series"]),
                        f"{row['step']}/{row['metric']}")
        if (key.serial, key.recipe, key.metric, kind) in named:
            continue
        found.append(Finding(key, str(kind), GATE_VERDICTS[str(kind)], gate.get("median_before"),
                             gate.get("median_after"), gate.get("effect"), gate.get("p_value"),
                             row.get("baseline"), bench.id, tuple(row.get("changes") or ()),
                             f"{gate.get('n_before')} baseline runs against "
                             f"{gate.get('n_after')} tonight"))
    return tuple(found)


def collect_bench(store: Store, bench: BenchRecord | None, *,
                  now: float | None = None) -> Report:
    """The report of ``bench`` (None: an empty database, an empty report that says so)."""
    generated = time.time() if now is None else now
    if bench is None:
        return Report(title="harness report: no bench yet", generated_at=generated,
                      harness_version=__version__, bench=None,
                      notes=("The results database holds no bench yet: run `harness bench` "
                             "first.",))
    timelines: dict[str, TimelineData] = {}
    views = []
    for run in bench_runs(store, bench.id):
        timelines[run.run.id] = samples(store, run.run.id)
        views.append(run_view(store, run, timelines[run.run.id]))
    history = history_view(store, bench.id)
    findings = (*history.findings, *gate_findings(bench, history.findings))
    return Report(
        title=f"harness bench {bench.id}", generated_at=generated,
        harness_version=__version__, bench=_bench_view(bench), findings=findings,
        series=history.series, phones=phones_table(views), runs=tuple(views),
        events=tuple(EventView(e.at, e.serial, e.recipe, e.kind, e.detail)
                     for e in bench_events(store, bench.id)),
        notes=history.notes, timelines={k: v for k, v in timelines.items() if v})


def collect_run(store: Store, run_id: str, *, now: float | None = None) -> Report:
    """The report of one run: its outputs, telemetry, steps and logs."""
    run = bench_run(store, run_id)
    timeline = samples(store, run.run.id)
    view = run_view(store, run, timeline)
    return Report(title=f"harness run {view.id} ({view.recipe})",
                  generated_at=time.time() if now is None else now,
                  harness_version=__version__, bench=None, runs=(view,),
                  timelines={view.id: timeline} if timeline else {})
