"""Change points over nights, and the nightly alert.

Two questions, two functions:

1. :func:`find_change_points` — *history*: where did a series of per-night values (the
   night's median of valid runs) change level? E-divisive means, the method Apache Otava
   (formerly Hunter, Fleming et al. 2023, after Matteson & James 2014) uses: in an interval,
   the split ``tau`` maximising the energy statistic

       Q(tau) = m*k/(m+k) * (2/(m*k) sum|x_i - y_j| - sum_{i<i'}|x_i - x_i'| / C(m,2)
                                                     - sum_{j<j'}|y_j - y_j'| / C(k,2))

   (``x`` = the m values left of tau, ``y`` = the k values right of it, exponent alpha = 1);
   the split is significant when a two-sided pooled Student's t-test between the two sides
   gives ``p <= max_pvalue`` (Otava's ``TTestSignificanceTester``; default 0.001, Otava's
   default), and then both sides are split again. Each accepted split must also pass
   catapult's filters (``dashboard/find_change_points.py::_PassesThresholds``):
   at least ``min_segment`` (6) points each side, relative change of medians >= 1 %, and
   absolute change of medians >= 2.5 x the smaller of the two sides' standard deviations.
   When all splits are found, each is re-tested against its neighbouring change points and
   the weakest failing one is dropped until all pass (Otava's merge step). Only the last
   ``window`` (50, catapult's ``_MAX_WINDOW_SIZE``) nights are examined.

2. :func:`nightly_alert` — *tonight*: is there a fresh change in the last ``tail_nights``
   (2) nights? History cannot say yet (6 nights each side), so the tail is tested with its
   runs: the baseline is the nights after the last history change point, at most
   ``baseline_nights`` (14) and at least ``min_baseline_nights`` (6) of them; the tail is
   the last two nights with at least ``min_tail_runs`` (6) runs — catapult's "6 points each
   side", counted in runs. An alert needs all of:

   - the Pinpoint gate (:mod:`harness.bench.gate`) says ``different`` (p <= 0.01) for the
     baseline's runs against the tail's runs;
   - relative change of the run medians >= ``min_relative_change`` (1 %, catapult);
   - the change in level is at least ``tail_min_z`` (4.5) standard errors — catapult's
     "absolute change >= 2.5 x std" filter, made to fit a two-night tail. Level before: the
     median of the baseline nights' medians; level after: the mean of the tail nights'
     medians. The standard error counts both noises a night has: the night's own offset
     (room temperature, background jobs: more runs do not remove it) and run noise (which
     more runs do). Estimates: a night median's std ``s_night`` is the largest of the
     successive-difference estimate over the window (von Neumann: robust to drift and to
     history steps), the baseline nights' plain std, and the run-noise floor
     ``1.2533 * s_run / sqrt(runs)``; ``s_run`` is the pooled within-night std of
     log(run) with outlier runs left out; the offset is what run noise does not explain,
     but at least ``min_offset_share`` (half) of ``s_night`` (the split is poorly known
     from 6-14 nights). Then ``se^2 = offset^2/T + sum_i (1.2533 s_run)^2 / n_i / T^2 +
     1.2533^2 s_night^2 / k`` for T tail nights of n_i runs and k baseline nights;
   - PyTorch HUD's rule: both tail nights agree — each tail night's median lies past the
     midpoint between the two levels, on the same side.

   Adaptive repeats: when tonight alone is ``suspicious_z`` (1.0) standard errors or more
   from the baseline and nothing is alerted, ``more_repeats`` asks to top tonight up to
   ``max_night_runs`` (20) runs; the nightly runs them and checks again.

   Tuned on ``benchmarks/bench_stats.py`` (30 nights x 3 phones x 2 recipes, 5 runs a
   night, 2 % run noise, 0.7 % night offsets, drift, outlier runs): see the README ("Bench
   statistics") for the measured false-alarm rate and detection delay.

3. :func:`confirmed_alert` — tonight, against the phone's other series: the nightly alert,
   dropped (``phone_wide``) when the same phone's recipes without a recorded change moved
   alike (a reference, as Chromium's perf bots run a reference build); measured on the
   virtual farm's own noise model by ``benchmarks/nights.py``.

``higher_is_worse`` (default True, for times) decides whether an increase is a regression.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.bench.gate import compare
from harness.bench.series import MAD_TO_SIGMA
from harness.bench.stattests import student_t_test

MIN_SPLIT_SIDE = 2  # the energy search considers splits with at least this many points a side
OUTLIER_SIGMAS = 4.0  # a run this many robust sigmas from its night's median is an outlier
MEDIAN_EFFICIENCY = 1.2533  # sqrt(pi/2): std of a normal sample's median / std of its mean

Direction = Literal["regression", "improvement"]


@dataclass(frozen=True)
class ChangePointParams:
    """Tunable rules of both detectors (defaults: see the module docstring)."""

    higher_is_worse: bool = True
    max_pvalue: float = 0.001  # Otava's default significance for the t-test
    min_segment: int = 6  # catapult MIN_SEGMENT_SIZE (points each side)
    min_relative_change: float = 0.01  # catapult _MIN_RELATIVE_CHANGE
    std_multiple: float = 2.5  # catapult _MULTIPLE_OF_STD_DEV
    window: int = 50  # catapult _MAX_WINDOW_SIZE (nights examined)
    tail_min_z: float = 4.5  # the tail's change in units of its standard error (tuned)
    tail_nights: int = 2  # PyTorch HUD: the latest two points must agree
    min_tail_runs: int = 6  # catapult's 6 points, counted in runs for the fresh tail
    baseline_nights: int = 14
    min_baseline_nights: int = 6
    max_night_runs: int = 20  # adaptive repeats: a suspicious night is topped up to this
    min_offset_share: float = 0.5  # at least this share of a night's std is night offset
    suspicious_z: float = 1.0  # tonight alone this far from the baseline asks for more runs
    # leave a pending change's own nights out of the baseline (:func:`_pending_start`); off:
    # on benchmarks/nights.py it catches later what two nights missed, at no gain within
    # two nights and with no fewer false alarms (README, "Bench statistics")
    exclude_pending: bool = False


@dataclass(frozen=True)
class ChangePoint:
    """A change in level of one series.

    ``index`` is the first night after the change (in the sequence passed in);
    ``alerted`` follows PyTorch HUD's rule: the latest two nights are both past the change.
    """

    index: int
    median_before: float
    median_after: float
    relative_change: float  # (after - before) / before
    p_value: float  # t-test (history) or the gate's min(KS, MWU) (nightly)
    direction: Direction
    alerted: bool
    kind: Literal["history", "nightly"]
    more_repeats: int = 0  # nightly only: extra runs tonight would settle a suspicion
    phone_wide: bool = False  # nightly only: the phone's other series moved alike (not alerted)


def _direction(change: float, higher_is_worse: bool) -> Direction:
    return "regression" if (change > 0) == higher_is_worse else "improvement"


def _energy_split(x: np.ndarray, lo: int, hi: int, min_seg: int) -> int | None:
    """The tau in [lo+min_seg, hi-min_seg] that maximises Q(tau) over x[lo:hi]."""
    seg = x[lo:hi]
    n = seg.size
    if n < 2 * min_seg:
        return None
    dist = np.abs(seg[:, None] - seg[None, :])
    cum = np.zeros((n + 1, n + 1))
    cum[1:, 1:] = dist.cumsum(0).cumsum(1)

    def block(r0: int, r1: int, c0: int, c1: int) -> float:
        return float(cum[r1, c1] - cum[r0, c1] - cum[r1, c0] + cum[r0, c0])

    best, best_tau = -math.inf, None
    for tau in range(min_seg, n - min_seg + 1):
        m, k = tau, n - tau
        between = block(0, tau, tau, n)
        within_x = block(0, tau, 0, tau) / 2.0
        within_y = block(tau, n, tau, n) / 2.0
        e = (2.0 * between / (m * k)
             - (within_x / math.comb(m, 2) if m > 1 else 0.0)
             - (within_y / math.comb(k, 2) if k > 1 else 0.0))
        q = m * k / (m + k) * e
        if q > best:
            best, best_tau = q, tau
    return None if best_tau is None else lo + best_tau


def _passes(left: np.ndarray, right: np.ndarray, p: ChangePointParams) -> tuple[bool, float]:
    """catapult's filters plus Otava's t-test; returns (passed, t-test p)."""
    if left.size < p.min_segment or right.size < p.min_segment:
        return False, 1.0
    med_l, med_r = float(np.median(left)), float(np.median(right))
    absolute = abs(med_r - med_l)
    if med_l == 0 or absolute / abs(med_l) < p.min_relative_change:
        return False, 1.0
    if absolute < p.std_multiple * min(float(left.std(ddof=1)), float(right.std(ddof=1))):
        return False, 1.0
    pval = student_t_test(left.tolist(), right.tolist()).p_value
    return pval <= p.max_pvalue, pval


def _split(x: np.ndarray, lo: int, hi: int, p: ChangePointParams, out: list[int]) -> None:
    """Recursive E-divisive: the best split of x[lo:hi] (any split with 2 points a side, so
    that each side has a std), kept when it passes the filters, then both sides again. As in
    catapult, a best split that fails the filters (say, 3 odd nights at an end) ends the
    search in that interval rather than moving the split to where it would pass."""
    tau = _energy_split(x, lo, hi, MIN_SPLIT_SIDE)
    if tau is None or not _passes(x[lo:tau], x[tau:hi], p)[0]:
        return
    out.append(tau)
    _split(x, lo, tau, p, out)
    _split(x, tau, hi, p, out)


def _merge(x: np.ndarray, taus: list[int], p: ChangePointParams) -> list[tuple[int, float]]:
    """Re-test each split against its neighbours; drop the weakest failing one, repeat."""
    taus = sorted(taus)
    while True:
        bounds = [0, *taus, x.size]
        tested = [_passes(x[bounds[i]:bounds[i + 1]], x[bounds[i + 1]:bounds[i + 2]], p)
                  for i in range(len(taus))]
        failing = [i for i, (ok, _) in enumerate(tested) if not ok]
        if not failing:
            return [(t, pv) for t, (_, pv) in zip(taus, tested, strict=True)]
        del taus[max(failing, key=lambda i: tested[i][1])]


def find_change_points(values: Sequence[float],
                       params: ChangePointParams | None = None) -> list[ChangePoint]:
    """History change points of per-night values (oldest first), in order of index."""
    p = params or ChangePointParams()
    offset = max(0, len(values) - p.window)
    x = np.asarray(values[offset:], dtype=float)
    found: list[int] = []
    _split(x, 0, x.size, p, found)
    merged = _merge(x, found, p)
    result = []
    for i, (tau, pval) in enumerate(merged):
        lo = merged[i - 1][0] if i else 0
        hi = merged[i + 1][0] if i + 1 < len(merged) else x.size
        before, after = float(np.median(x[lo:tau])), float(np.median(x[tau:hi]))
        change = (after - before) / before
        mid = (before + after) / 2.0
        last_two = x[-2:]
        past = bool(np.all(last_two > mid) if after > before else np.all(last_two < mid))
        result.append(ChangePoint(
            index=offset + tau, median_before=before, median_after=after,
            relative_change=change, p_value=pval,
            direction=_direction(change, p.higher_is_worse), alerted=past, kind="history"))
    return result


def _night_noise(medians: Sequence[float], steps: Sequence[int]) -> float:
    """Night-to-night std from successive differences (von Neumann): sqrt(mean(d^2) / 2)
    over the differences that do not cross a history change point. A slow drift or a step
    barely moves it, unlike a plain std, and it uses every night of the window."""
    diffs = [medians[i] - medians[i - 1] for i in range(1, len(medians)) if i not in steps]
    if not diffs:
        return 0.0
    return math.sqrt(math.fsum(d * d for d in diffs) / (2.0 * len(diffs)))


def _run_sigma(nights: Sequence[Sequence[float]]) -> float:
    """Relative per-run noise: the pooled within-night standard deviation of log(run)
    (ddof=1 per night), leaving out outlier runs — those further than ``OUTLIER_SIGMAS``
    robust sigmas (1.4826 * MAD of all residuals from their night's median) from their
    night's median. A plain MAD is biased low at 5 runs a night; a plain std is blown up by
    one background-job run."""
    # a zero or negative figure (a stage that took no time) has no log: it is left out
    # rather than turning the whole estimate into NaN, which would silence every alert
    positive = [v[np.isfinite(v) & (v > 0)] for v in (np.asarray(n, dtype=float) for n in nights)]
    logs = [np.log(v) for v in positive if v.size >= 2]
    if not logs:
        return 0.0
    resid = np.concatenate([v - np.median(v) for v in logs])
    scale = MAD_TO_SIGMA * float(np.median(np.abs(resid)))
    ss, df = 0.0, 0
    for v in logs:
        kept = v[np.abs(v - np.median(v)) <= OUTLIER_SIGMAS * scale] if scale > 0 else v
        if kept.size >= 2:
            ss += float(((kept - kept.mean()) ** 2).sum())
            df += kept.size - 1
    return math.sqrt(ss / df) if df else 0.0


@dataclass(frozen=True)
class _Noise:
    night: float  # std of one baseline night's median (absolute)
    run: float  # std of one run (absolute)
    offset: float  # the night-to-night part that more runs cannot remove (absolute)


def _noise(nights: Sequence[Sequence[float]], medians: Sequence[float], start: int,
           cut: int, p: ChangePointParams) -> _Noise:
    """Noise of the baseline: a night median's std is the largest of the successive-
    difference estimate over the window and the baseline nights' plain std, and never less
    than the run noise alone implies (1.2533 * sigma_run / sqrt(runs))."""
    lo = max(0, cut - p.window)
    steps = [cp.index - lo for cp in find_change_points(medians[lo:cut], p)]
    base = nights[start:cut]
    level = float(np.median(medians[start:cut]))
    run = _run_sigma(base) * level
    runs_per_night = float(np.median([len(n) for n in base]))
    floor = MEDIAN_EFFICIENCY * run / math.sqrt(runs_per_night)
    night = max(_night_noise(medians[lo:cut], steps),
                float(np.std(medians[start:cut], ddof=1)), floor)
    offset = max(math.sqrt(max(0.0, night**2 - floor**2)), p.min_offset_share * night)
    return _Noise(night=night, run=run, offset=offset)


def _baseline_start(medians: Sequence[float], cut: int, p: ChangePointParams) -> int:
    """The baseline's first night: after the last history change point, at most
    ``baseline_nights`` before the tail."""
    history = find_change_points(medians[:cut], p)
    return max([cp.index for cp in history] + [cut - p.baseline_nights, 0])


def _pending_start(medians: Sequence[float], start: int, cut: int,
                   p: ChangePointParams) -> int:
    """Where the baseline ends: before the nights just ahead of the tail that lie past the
    midpoint between the baseline's level and the tail's, on the tail's side — a change
    that began before the tail and was not alerted yet (say, its second night was unlucky).
    They are left out of the baseline, so that the change's own nights do not widen the
    baseline's noise; at most ``min_segment - tail_nights`` of them (history takes over from
    there) and never below ``min_baseline_nights`` of baseline."""
    before = float(np.median(medians[start:cut]))
    after = float(np.mean(medians[cut:]))
    mid = (before + after) / 2.0
    end = cut
    floor = max(start + p.min_baseline_nights, cut - (p.min_segment - p.tail_nights))
    while end > floor and (medians[end - 1] - mid) * (after - before) > 0:
        end -= 1
    return end


def _tail_z(nights: Sequence[Sequence[float]], medians: Sequence[float], start: int,
            cut: int, p: ChangePointParams) -> tuple[float, float, float]:
    """(level before, level after, z) of the tail against the baseline (module docstring)."""
    noise = _noise(nights, medians, start, cut, p)
    tail = nights[cut:]
    before = float(np.median(medians[start:cut]))
    after = float(np.mean(medians[cut:]))
    t, k = len(tail), cut - start
    var_tail = (noise.offset**2 / t
                + sum((MEDIAN_EFFICIENCY * noise.run) ** 2 / len(n) for n in tail) / t**2)
    var_base = MEDIAN_EFFICIENCY**2 * noise.night**2 / k
    sd = math.sqrt(var_tail + var_base)
    return before, after, abs(after - before) / sd if sd > 0 else math.inf


def nightly_alert(nights: Sequence[Sequence[float]],
                  params: ChangePointParams | None = None) -> ChangePoint | None:
    """A fresh change in the last ``tail_nights`` nights, or None when there is no candidate.

    ``nights`` holds each night's valid run values, oldest first; a night without valid
    runs must be left out by the caller (ValueError). The returned point has ``alerted``
    True only when every rule of the module docstring holds; ``more_repeats`` asks for more
    runs tonight. ``direction`` follows the change of level. With ``exclude_pending``,
    ``index`` is the first night left out as the pending change's (:func:`_pending_start`).
    """
    p = params or ChangePointParams()
    if any(len(n) == 0 for n in nights):
        raise ValueError("a night without valid runs must be left out of the series")
    if len(nights) < p.min_baseline_nights + p.tail_nights:
        return None
    medians = [float(np.median(n)) for n in nights]
    cut = len(nights) - p.tail_nights
    start = _baseline_start(medians, cut, p)
    if cut - start < p.min_baseline_nights:
        return None
    tail = [v for n in nights[cut:] for v in n]
    if len(tail) < p.min_tail_runs:
        return None
    end = _pending_start(medians, start, cut, p) if p.exclude_pending else cut
    if end < cut:  # a pending change's own nights are neither baseline nor tail
        nights, medians = [*nights[:end], *nights[cut:]], [*medians[:end], *medians[cut:]]
        cut = end
    gate = compare([v for n in nights[start:cut] for v in n], tail)
    before, after, z = _tail_z(nights, medians, start, cut, p)
    tail_meds = np.asarray(medians[cut:])
    mid = (before + after) / 2.0
    agree = bool(np.all(tail_meds > mid) if after > before else np.all(tail_meds < mid))
    alerted = (gate.verdict == "different"
               and abs(gate.effect) >= p.min_relative_change
               and z >= p.tail_min_z
               and agree)
    tonight_z = _tail_z([*nights[:cut], nights[-1]], [*medians[:cut], medians[-1]],
                        start, cut, p)[2]
    suspicious = tonight_z >= p.suspicious_z
    more = max(0, p.max_night_runs - len(nights[-1])) if suspicious and not alerted else 0
    return ChangePoint(
        index=cut, median_before=gate.median_a, median_after=gate.median_b,
        relative_change=gate.effect, p_value=gate.p_value,
        direction=_direction(after - before, p.higher_is_worse), alerted=alerted, kind="nightly",
        more_repeats=more)


def phone_factors(controls: Sequence[Sequence[Sequence[float]]]) -> list[float] | None:
    """The phone's common level per night, from its control series (each a list of nights
    of run values, aligned; an empty night: no value): per control, the night's median over
    the control's median night; per night, the median over the controls that have a value.
    None when a night has no control value at all."""
    ratios: list[list[float]] = [[] for _ in range(len(controls[0]))] if controls else []
    for control in controls:
        medians = [float(np.median(n)) if len(n) else math.nan for n in control]
        known = [m for m in medians if not math.isnan(m)]
        if not known:
            continue
        level = float(np.median(known))
        for night, m in enumerate(medians):
            if not math.isnan(m) and level > 0:
                ratios[night].append(m / level)
    if not ratios or any(not r for r in ratios):
        return None
    return [float(np.median(r)) for r in ratios]


def confirmed_alert(nights: Sequence[Sequence[float]],
                    controls: Sequence[Sequence[Sequence[float]]] = (),
                    params: ChangePointParams | None = None) -> ChangePoint | None:
    """:func:`nightly_alert`, checked against the phone's other series.

    ``controls``: the nights (aligned with ``nights``) of the same phone's series that share
    nothing that changed with this one (other recipes whose recorded provenance stayed the
    same). A night's level has a part every series of a phone shares (room, charger,
    background load, the boot): Chromium's perf bots run a *reference build* next to the
    build under test for this reason, and a change the reference shows too is the machine's.
    Here the reference is the phone's common level (:func:`phone_factors`) over the last
    ``baseline_nights + tail_nights`` nights: its shift from the baseline nights (median) to
    the tail nights (mean). When that shift has the alert's direction and is at least half
    of the alert's relative change (the alert's own part is then not past the midpoint, the
    two-nights rule's criterion), the change is the whole phone's with nothing recorded: it
    is returned with ``alerted`` False and ``phone_wide`` True (history change points still
    show it once it lasts). Without usable controls the plain nightly rule decides.
    """
    p = params or ChangePointParams()
    raw = nightly_alert(nights, p)
    if raw is None or not raw.alerted or not controls:
        return raw
    span = p.baseline_nights + p.tail_nights
    factors = phone_factors([c[-span:] for c in controls])
    if factors is None or len(factors) <= p.tail_nights:
        return raw
    before = float(np.median(factors[:-p.tail_nights]))
    shift = float(np.mean(factors[-p.tail_nights:])) / before - 1.0
    if shift * raw.relative_change > 0 and abs(shift) >= abs(raw.relative_change) / 2.0:
        return dataclasses.replace(raw, alerted=False, phone_wide=True)
    return raw
