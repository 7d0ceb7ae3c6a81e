"""Per series: the valid samples, their summary, and the gate against the baseline.

A series is (phone serial, config entry, step, metric) — the phone's model goes with it in
reports. Its samples are the metric of the bench's *valid* measured runs (warm-ups and
invalid runs left out) minus the runs :func:`harness.bench.validity.noisy_runs` calls
outliers; those runs are then marked ``noisy`` in the store.

Verdicts per series: ``regression`` / ``improvement`` when the Pinpoint gate says
``different`` and the medians moved by at least :data:`MIN_RELATIVE_CHANGE` (1 %, catapult's
filter) in the worse / better direction (every measured metric is a time: higher is worse);
``same``; ``unknown`` (the adaptive repeats ran out of budget); ``no baseline``;
``no valid runs``.

Baseline ``last``: per series, the newest earlier ended bench that has valid runs of it (a
sharded night's series come from the shard that ran the phone). A bench id: that bench only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.bench.config import BenchConfig
from harness.bench.gate import compare
from harness.bench.series import summarize
from harness.bench.validity import noisy_runs
from harness.results import benches
from harness.results.benches import BenchRun
from harness.results.store import Store

MIN_RELATIVE_CHANGE = 0.01
COUNT_METRICS = ("steps", "iters", "warmup")  # counts the binaries echo, not timings


@dataclass(frozen=True, order=True)
class SeriesKey:
    serial: str
    series: str
    step: str
    metric: str

    def label(self) -> str:
        return f"{self.serial} {self.series} {self.step}/{self.metric}"


def timed(name: str) -> bool:
    return name not in COUNT_METRICS and not name.endswith("blocks_fraction")


def _measured(runs: Sequence[BenchRun], serial: str, series: str) -> list[BenchRun]:
    return [r for r in runs if r.serial == serial and r.series == series and not r.warmup
            and r.validity in ("valid", "noisy")]


def _samples(runs: Sequence[BenchRun], key: SeriesKey) -> tuple[list[BenchRun], list[int]]:
    """The runs carrying the metric, and the indexes among them that are outliers."""
    with_metric = [r for r in _measured(runs, key.serial, key.series)
                   if (key.step, key.metric) in r.metrics]
    return with_metric, noisy_runs([r.metrics[(key.step, key.metric)] for r in with_metric])


def series_values(runs: Sequence[BenchRun], key: SeriesKey) -> list[float]:
    """The series' samples in ``runs`` (valid, measured, outliers left out)."""
    found, outliers = _samples(runs, key)
    return [r.metrics[(key.step, key.metric)] for i, r in enumerate(found) if i not in outliers]


def series_keys(runs: Sequence[BenchRun]) -> list[SeriesKey]:
    keys = {SeriesKey(r.serial or "", r.series or r.recipe, step, name)
            for r in runs if not r.warmup for (step, name) in r.metrics if timed(name)}
    return sorted(keys)


@dataclass(frozen=True)
class Baseline:
    """A series' samples in its baseline bench, and what that bench's runs were made of."""

    bench_id: str
    values: tuple[float, ...]
    provenance: dict[str, Any] | None


def _provenance(runs: Sequence[BenchRun], key: SeriesKey) -> dict[str, Any] | None:
    return next((r.provenance for r in _measured(runs, key.serial, key.series)
                 if r.provenance is not None and (key.step, key.metric) in r.metrics), None)


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """What differs between two runs' provenance, in words (attribution)."""
    from harness.bench.attribution import Provenance, describe, diff

    def prov(data: dict[str, Any]) -> Provenance:
        return Provenance(data.get("asset_sets") or {}, str(data.get("harness_version", "")),
                          str(data.get("fingerprint", "")))

    if before is None or after is None:
        return []
    return describe(diff(prov(before), prov(after)))


def baseline_samples(store: Store, bench_id: str,
                     ref: str | None) -> dict[SeriesKey, Baseline]:
    """Samples per series of the baseline ``ref`` (None: no baseline)."""
    if not ref:
        return {}
    if ref == "last":
        current = benches.get_bench(store, bench_id)
        candidates = benches.previous_benches(store, current.started_at)
    else:
        candidates = [benches.get_bench(store, ref).id]
    found: dict[SeriesKey, Baseline] = {}
    for candidate in candidates:
        runs = benches.bench_runs(store, candidate)
        for key in series_keys(runs):
            if key not in found:
                values = series_values(runs, key)
                if values:
                    found[key] = Baseline(candidate, tuple(values), _provenance(runs, key))
    return found


def _verdict(gate_verdict: str, effect: float) -> str:
    if gate_verdict == "different" and abs(effect) >= MIN_RELATIVE_CHANGE:
        return "regression" if effect > 0 else "improvement"
    return "same" if gate_verdict == "different" else gate_verdict


def judge_series(runs: Sequence[BenchRun], baseline: Mapping[SeriesKey, Baseline],
                 config: BenchConfig) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One dict per series (summary, gate, verdict) and the runs to mark ``noisy``."""
    found: list[dict[str, Any]] = []
    noisy: dict[str, str] = {}
    models = {r.serial: r.model for r in runs}
    max_cv, min_effect = config.thresholds.max_cv, config.thresholds.min_effect
    for key in series_keys(runs):
        with_metric, outliers = _samples(runs, key)
        values = []
        for i, run in enumerate(with_metric):
            value = run.metrics[(key.step, key.metric)]
            if i in outliers:
                noisy.setdefault(run.id, f"{key.step}/{key.metric} {value:g} is an outlier of "
                                         f"its series in this bench")
            else:
                values.append(value)
        invalid = [r for r in runs if r.serial == key.serial and r.series == key.series
                   and not r.warmup and r.validity not in ("valid", "noisy")]
        row: dict[str, Any] = {"serial": key.serial, "model": models.get(key.serial, ""),
                               "series": key.series, "step": key.step, "metric": key.metric,
                               "invalid_runs": len(invalid), "outliers": len(outliers)}
        if not values:
            found.append({**row, "verdict": "no valid runs"})
            continue
        row["summary"] = asdict(summarize(values, max_cv=max_cv))
        ref = baseline.get(key)
        base = list(ref.values) if ref else []
        if ref is None or len(base) < 2 or len(values) < 2:
            found.append({**row, "verdict": "no baseline" if not base else "unknown"})
            continue
        row["baseline"] = ref.bench_id
        gate = compare(base, values, min_effect=min_effect)
        row["gate"] = {"verdict": gate.verdict, "p_value": gate.p_value,
                       "effect": gate.effect, "median_before": gate.median_a,
                       "median_after": gate.median_b, "n_before": gate.n_a,
                       "n_after": gate.n_b, "more_repeats": gate.more_repeats}
        verdict = _verdict(gate.verdict, gate.effect)
        if verdict in ("regression", "improvement"):
            row["changes"] = changes(ref.provenance, _provenance(runs, key))
        found.append({**row, "verdict": verdict})
    return found, noisy
