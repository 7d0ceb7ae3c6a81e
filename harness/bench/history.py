"""Bench history: per-series nights, change points, tonight's alerts, attributions, drift.

:func:`analyse` reads the results store and answers the nightly's morning questions: what
got slower or faster, on which phones, since which change, and which numbers not to trust.

Data model (one *bench* = one night; a shard of a night is a bench of its own, and since a
phone is in exactly one shard every series still has one bench a night):

- A **series** (:class:`SeriesKey`) is one phone model + serial, one recipe, one metric.
  Timing metrics are the figures whose name carries a time unit (``total_s``, ``s/step``,
  ``unet.init_s``, ``clip.ms``, ``s/it``: :func:`is_time_metric`); counts such as ``steps``
  or ``iters`` are not series. The metric is named ``<step>/<name>`` (``pipeline/total_s``).
  When a (serial, recipe) ran with more than one parameter set in the window, ``variant``
  names the differing parameters (``seed=7 steps=4``) so that different work is never one
  series; otherwise it is empty.
- A **night** (:class:`Night`) holds the series' values from one bench: ``valid`` are the
  values of measured runs (``warmup = 0``) whose validity is ``valid``; everything else
  measured (``throttled``, ``hot-start``, ``noisy``, ``failed``, or never judged) is kept in
  ``invalid`` with its reason and never enters a statistic.
- Statistics (:mod:`harness.bench.changepoint`): history change points over the medians of
  the nights with valid values (E-divisive + t-test + catapult's filters), and tonight's
  alert (:func:`~harness.bench.changepoint.nightly_alert`: the two-nights rule, the gate,
  the standard-error filter, adaptive repeats). Indices of the change points in
  :class:`SeriesHistory` are indices into its ``nights``.
- **Findings** (:class:`Finding`) are tonight's verdicts: ``regression`` / ``improvement``
  from an alerted nightly change, ``quality`` from output drift (:mod:`harness.bench.drift`).
  Each names the last good and first bad bench and what changed between them
  (:mod:`harness.bench.attribution`): when the change is found later than the night it
  happened (the alert may come on the third slow night), the attribution walks back from
  the first night of the alert's tail to the latest night whose provenance differs from the
  night before, at most ``baseline_nights`` nights back.
- ``more_repeats``: series whose tonight is suspicious but not settled, and how many more
  runs tonight would settle it (the bench runs them within its budget and analyses again).

Which series get an alert: with ``bench_id`` given, the series that have runs in that bench
(the history is cut there); without it, every series at its own latest night. A series whose
latest night has no valid value gets no alert (its history is still shown).

Quality series: a series per (serial, recipe, params, output) for runs whose params fix a
``seed``; metric ``<step>/<output>.ssim``; the night's values are the SSIMs of its valid
runs' images against the reference (the series' first valid image ever); a night is bad
when any of its images fails :func:`harness.bench.quality.compare_output` (SSIM < 0.98 or
PSNR < 35 dB). A quality finding is made when tonight is bad.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness.bench.attribution import Provenance, attribute, describe, diff
from harness.bench.changepoint import (
    ChangePoint,
    ChangePointParams,
    find_change_points,
    nightly_alert,
)
from harness.bench.drift import ImageCache, check_image
from harness.bench.quality import DEFAULT_MIN_PSNR_DB, DEFAULT_MIN_SSIM
from harness.bench.series import SeriesSummary, summarize
from harness.results.history_queries import (
    BenchRow,
    BenchRun,
    bench_runs,
    bench_window,
    first_valid_output,
)
from harness.results.store import Store

TIME_UNITS = ("s", "ms", "us")
FindingKind = Literal["regression", "improvement", "quality"]


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One series: phone model + serial, recipe, metric (and a params variant, see the
    module docstring; empty when the recipe ran with one parameter set)."""

    model: str
    serial: str
    recipe: str
    metric: str
    variant: str = ""

    def label(self) -> str:
        """``recipe metric on model (serial)`` in words, for messages."""
        variant = f" [{self.variant}]" if self.variant else ""
        return f"{self.recipe}{variant} {self.metric} on {self.model or '?'} ({self.serial})"


@dataclass(frozen=True)
class Night:
    """One bench's values of one series.

    ``invalid``: ``(run id, value or None, "validity: reason")`` of measured runs that are
    not ``valid`` (a failed run usually has no value). ``provenance``: what the night's
    first valid run (else its first run) was made of; None when no run recorded it.
    """

    bench_id: str
    started_at: float
    valid: tuple[float, ...]
    invalid: tuple[tuple[str, float | None, str], ...]
    valid_runs: tuple[str, ...] = ()
    provenance: Provenance | None = None


@dataclass(frozen=True)
class Finding:
    """A verdict of tonight: a regression, an improvement or an output drift.

    ``median_before``/``median_after``: for timing, the run medians of the baseline and of
    the alert's tail (the gate's); for quality, the SSIM of the last good night (1.0 for
    the reference itself) and tonight's median SSIM. ``p_value``: the gate's min(KS, MWU);
    None for quality. ``changes``: what differs between ``last_good_bench`` and
    ``first_bad_bench`` in words (attribution); ``detail``: one line for reports.
    """

    key: SeriesKey
    kind: FindingKind
    median_before: float
    median_after: float
    relative_change: float
    p_value: float | None
    last_good_bench: str | None
    first_bad_bench: str
    changes: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class SeriesHistory:
    """A series over the window: its nights, history change points (indices into
    ``nights``), tonight's nightly check (None: not checked) and tonight's summary."""

    key: SeriesKey
    nights: tuple[Night, ...]
    change_points: tuple[ChangePoint, ...]
    alert: ChangePoint | None
    summary: SeriesSummary | None


@dataclass(frozen=True)
class HistoryAnalysis:
    """Every series of the window, tonight's findings, and the repeats that would settle
    suspicious series. ``bench_id``: the bench analysed (None: no bench in the store)."""

    series: tuple[SeriesHistory, ...]
    findings: tuple[Finding, ...]
    more_repeats: dict[SeriesKey, int]
    bench_id: str | None = None
    benches: tuple[BenchRow, ...] = ()


@dataclass(frozen=True)
class QualityParams:
    """Thresholds of the output-drift check (defaults: :mod:`harness.bench.quality`)."""

    min_ssim: float = DEFAULT_MIN_SSIM
    min_psnr_db: float = DEFAULT_MIN_PSNR_DB


def is_time_metric(name: str) -> bool:
    """A metric whose key (after the last ``.``) is a time: ``s``/``ms``/``us`` on its own,
    before a ``/`` (``s/step``), or after a ``_`` (``total_s``, ``init_ms``)."""
    key = name.rsplit(".", 1)[-1].lower()
    head = key.split("/", 1)[0]
    return head in TIME_UNITS or any(head.endswith("_" + unit) for unit in TIME_UNITS)


def provenance_of(data: Mapping[str, Any] | None) -> Provenance | None:
    """A run's ``provenance_json`` as a :class:`Provenance` (None when not recorded)."""
    if not data:
        return None
    sets = data.get("asset_sets") or {}
    return Provenance(
        assets={str(k): {str(p): str(d) for p, d in (v or {}).items()} for k, v in sets.items()},
        harness_version=str(data.get("harness_version") or ""),
        build_fingerprint=str(data.get("fingerprint") or ""))


def _params_text(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _variants(runs: Sequence[BenchRun]) -> dict[str, str]:
    """params text -> variant label, per (serial, recipe) of ``runs`` (see the module doc)."""
    groups: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run.serial, run.recipe), {})[_params_text(run.params)] = run.params
    labels: dict[str, str] = {}
    for (serial, recipe), sets in groups.items():
        if len(sets) == 1:
            labels.update({f"{serial}\0{recipe}\0{text}": "" for text in sets})
            continue
        keys = sorted({k for p in sets.values() for k in p})
        differing = [k for k in keys if len({_params_text({"v": p.get(k)})
                                              for p in sets.values()}) > 1]
        for text, p in sets.items():
            labels[f"{serial}\0{recipe}\0{text}"] = " ".join(f"{k}={p.get(k)}"
                                                            for k in differing)
    return labels


def _reason(run: BenchRun) -> str:
    validity = run.validity or ("failed" if run.status != "ok" else "unjudged")
    reason = run.validity_reason or ("no validity verdict was recorded"
                                     if run.validity is None else "")
    return f"{validity}: {reason}" if reason else validity


@dataclass
class _Builder:
    """Runs of one series, bench by bench, while the nights are assembled."""

    valid: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    invalid: dict[str, list[tuple[str, float | None, str]]] = field(default_factory=dict)
    provenance: dict[str, Provenance | None] = field(default_factory=dict)

    def add(self, run: BenchRun, value: float | None) -> None:
        prov = provenance_of(run.provenance)
        if run.validity == "valid" and value is not None:
            if not self.valid.get(run.bench_id):
                self.provenance[run.bench_id] = prov  # the first valid run's
            self.valid.setdefault(run.bench_id, []).append((run.id, value))
        else:
            self.invalid.setdefault(run.bench_id, []).append((run.id, value, _reason(run)))
            if self.provenance.get(run.bench_id) is None and not self.valid.get(run.bench_id):
                self.provenance[run.bench_id] = prov

    def nights(self, benches: Sequence[BenchRow]) -> tuple[Night, ...]:
        out = []
        for bench in benches:
            valid, invalid = self.valid.get(bench.id, []), self.invalid.get(bench.id, [])
            if not valid and not invalid:
                continue
            out.append(Night(bench.id, bench.started_at, tuple(v for _, v in valid),
                             tuple(invalid), tuple(r for r, _ in valid),
                             self.provenance.get(bench.id)))
        return tuple(out)


def _timing_builders(runs: Sequence[BenchRun],
                     variants: Mapping[str, str]) -> dict[SeriesKey, _Builder]:
    metrics: dict[tuple[str, str, str], set[tuple[str, str]]] = {}
    for run in runs:
        if not run.warmup:
            group = metrics.setdefault((run.serial, run.recipe, _params_text(run.params)), set())
            group.update(m for m in run.metrics if is_time_metric(m[1]))
    builders: dict[SeriesKey, _Builder] = {}
    models: dict[str, str] = {}
    for run in runs:
        models[run.serial] = run.model or models.get(run.serial, "")
    for run in runs:
        if run.warmup:
            continue
        text = _params_text(run.params)
        variant = variants[f"{run.serial}\0{run.recipe}\0{text}"]
        for step, name in sorted(metrics[(run.serial, run.recipe, text)]):
            key = SeriesKey(models[run.serial], run.serial, run.recipe, f"{step}/{name}",
                            variant)
            builders.setdefault(key, _Builder()).add(run, run.metrics.get((step, name)))
    return builders


def _attribution_index(nights: Sequence[Night], index: int, lookback: int) -> int:
    """The night the change most likely came with: the latest night in
    ``[index - lookback, index]`` whose provenance differs from its predecessor's; else
    ``index``."""
    for i in range(index, max(0, index - lookback), -1):
        before, after = nights[i - 1].provenance, nights[i].provenance
        if before is not None and after is not None and diff(before, after):
            return i
    return index


def _changes(nights: Sequence[Night], index: int) -> tuple[str, ...]:
    history = [n.provenance for n in nights]
    try:
        return tuple(describe(attribute(history, index)))
    except ValueError as exc:
        return (f"cannot attribute: {exc}",)


def _timing_finding(key: SeriesKey, nights: Sequence[Night], alert: ChangePoint,
                    p: ChangePointParams) -> Finding:
    index = _attribution_index(nights, alert.index, p.baseline_nights)
    good = nights[index - 1].bench_id if index > 0 else None
    change = alert.relative_change
    detail = (f"{key.label()}: {alert.direction} {change:+.1%} (median "
              f"{alert.median_before:.4g} -> {alert.median_after:.4g}, p = "
              f"{alert.p_value:.2g}) since bench {nights[index].bench_id}")
    return Finding(key, alert.direction, alert.median_before, alert.median_after, change,
                   alert.p_value, good, nights[index].bench_id, _changes(nights, index),
                   detail)


def _timing_series(key: SeriesKey, nights: tuple[Night, ...], check: bool,
                   p: ChangePointParams) -> tuple[SeriesHistory, Finding | None]:
    kept = [i for i, n in enumerate(nights) if n.valid]
    medians = [float(np.median(nights[i].valid)) for i in kept]
    points = tuple(dataclasses.replace(cp, index=kept[cp.index])
                   for cp in find_change_points(medians, p))
    alert = None
    tonight_ok = bool(nights) and bool(nights[-1].valid)
    if check and tonight_ok:
        found = nightly_alert([nights[i].valid for i in kept], p)
        alert = None if found is None else dataclasses.replace(found, index=kept[found.index])
    summary = summarize(nights[-1].valid) if tonight_ok else None
    history = SeriesHistory(key, nights, points, alert, summary)
    finding = _timing_finding(key, nights, alert, p) if alert and alert.alerted else None
    return history, finding


def _checked_serials(runs: Sequence[BenchRun], bench_id: str | None) -> set[tuple[str, str]]:
    return {(r.serial, r.recipe) for r in runs if bench_id is None or r.bench_id == bench_id}


def analyse(store: Store, *, bench_id: str | None = None, max_nights: int = 60,
            params: ChangePointParams | None = None,
            quality: QualityParams | None = None) -> HistoryAnalysis:
    """Analyse the last ``max_nights`` benches up to ``bench_id`` (default: the latest)."""
    p = params or ChangePointParams()
    benches = bench_window(store, bench_id, max_nights)
    if not benches:
        return HistoryAnalysis((), (), {}, None, ())
    runs = bench_runs(store, [b.id for b in benches])
    variants = _variants(runs)
    checked = _checked_serials(runs, bench_id)
    series: list[SeriesHistory] = []
    findings: list[Finding] = []
    for key, builder in sorted(_timing_builders(runs, variants).items()):
        history, finding = _timing_series(key, builder.nights(benches),
                                          (key.serial, key.recipe) in checked, p)
        series.append(history)
        findings.extend([finding] if finding else [])
    q_series, q_findings = _quality(store, runs, benches, variants, checked,
                                    quality or QualityParams())
    series.extend(q_series)
    findings.extend(q_findings)
    more = {s.key: s.alert.more_repeats for s in series
            if s.alert is not None and s.alert.more_repeats > 0}
    order = {"regression": 0, "quality": 1, "improvement": 2}
    findings.sort(key=lambda f: (order[f.kind], f.key))
    return HistoryAnalysis(tuple(series), tuple(findings), more, benches[-1].id,
                           tuple(benches))


# ---- output drift --------------------------------------------------------------------------

@dataclass
class _QualityGroup:
    serial: str
    recipe: str
    params: dict[str, Any]
    step: str
    output: str
    runs: list[tuple[BenchRun, str | None]] = field(default_factory=list)


def _quality_groups(runs: Iterable[BenchRun]) -> dict[tuple[str, str, str, str, str],
                                                        _QualityGroup]:
    groups: dict[tuple[str, str, str, str, str], _QualityGroup] = {}
    for run in runs:
        if run.warmup or run.params.get("seed") is None:
            continue
        for out in run.outputs:
            if out.kind != "image":
                continue
            gkey = (run.serial, run.recipe, _params_text(run.params), out.step, out.name)
            group = groups.setdefault(gkey, _QualityGroup(run.serial, run.recipe, run.params,
                                                          out.step, out.name))
            group.runs.append((run, out.png_path))
    return groups


def _quality(store: Store, runs: Sequence[BenchRun], benches: Sequence[BenchRow],
             variants: Mapping[str, str], checked: set[tuple[str, str]],
             q: QualityParams) -> tuple[list[SeriesHistory], list[Finding]]:
    models = {r.serial: r.model for r in runs if r.model}
    cache = ImageCache()
    series: list[SeriesHistory] = []
    findings: list[Finding] = []
    for group in _quality_groups(runs).values():
        ref = first_valid_output(store, group.serial, group.recipe, group.params, group.step,
                                 group.output)
        if ref is None:
            continue
        variant = variants[f"{group.serial}\0{group.recipe}\0{_params_text(group.params)}"]
        key = SeriesKey(models.get(group.serial, ""), group.serial, group.recipe,
                        f"{group.step}/{group.output}.ssim", variant)
        history, finding = _quality_series(key, group, ref, benches, cache, q,
                                           (group.serial, group.recipe) in checked)
        series.append(history)
        findings.extend([finding] if finding else [])
    series.sort(key=lambda s: s.key)
    return series, findings


def _quality_series(key: SeriesKey, group: _QualityGroup, ref: tuple[str, str],
                    benches: Sequence[BenchRow], cache: ImageCache, q: QualityParams,
                    check: bool) -> tuple[SeriesHistory, Finding | None]:
    builder = _Builder()
    bad: dict[str, list[str]] = {}  # bench id -> reasons of its drifted images
    for run, png in group.runs:
        if run.validity != "valid":
            builder.add(run, None)
            continue
        result = check_image(cache, run.id, ref[1], png, q.min_ssim, q.min_psnr_db).result
        if result is None:
            continue  # the image (or the reference) is gone from this host
        builder.add(run, result.ssim)
        if result.verdict == "quality":
            bad.setdefault(run.bench_id, []).append(f"run {run.id}: {result.reason}")
    nights = builder.nights(benches)
    summary = summarize(nights[-1].valid) if nights and nights[-1].valid else None
    history = SeriesHistory(key, nights, (), None, summary)
    if not (check and nights and nights[-1].bench_id in bad):
        return history, None
    first = len(nights) - 1
    while first > 0 and (nights[first - 1].bench_id in bad or not nights[first - 1].valid):
        first -= 1
    good = first - 1 if first > 0 else None
    before = float(np.median(nights[good].valid)) if good is not None else 1.0
    after = float(np.median(nights[-1].valid))
    reasons = bad[nights[-1].bench_id]
    detail = (f"{key.label()}: output drift against the reference image (run {ref[0]}): "
              f"{reasons[0]}" + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""))
    finding = Finding(key, "quality", before, after, (after - before) / before, None,
                      nights[good].bench_id if good is not None else None,
                      nights[first].bench_id, _changes(nights, first), detail)
    return history, finding
