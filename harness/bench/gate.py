"""The pairwise gate: tonight's samples against the baseline's, as Chromium's Pinpoint does.

Method (Pinpoint, catapult ``dashboard/pinpoint/models/compare/compare.py``):

- ``p = min(p_KS, p_MWU)`` — Mann–Whitney U is weak at changes of spread, Kolmogorov–Smirnov
  at discrete data; taking the smaller p-value uses both (:mod:`harness.bench.stattests`).
- ``different`` when ``p <= LOW_THRESHOLD`` (0.01);
- ``same`` when ``p > high_threshold(magnitude, n)``;
- ``unknown`` in between: run more repeats (``more_repeats`` says how many).

The high threshold (Pinpoint ``thresholds.py`` / ``thresholds_performance.py``) answers: if
the two samples really differed by ``magnitude`` IQRs, how large could p still be? Two
normal samples of ``n`` values whose means are ``magnitude * 1.349`` sigma apart are drawn
:data:`THRESHOLD_TRIALS` times and the 99th percentile of their Mann–Whitney p-values is the
threshold: a p-value above it is seen in at most 1 % of comparisons with a real difference of
that size, so ``same`` is wrong at most ~1 % of the time for effects of at least that size.
As n grows the high threshold falls, until it crosses 0.01 and every comparison resolves.
Pinpoint stores a table made this way; harness computes the same quantity on demand (seeded,
so deterministic, and cached), with its own Mann–Whitney, for magnitudes on a 0.1 grid in
[0.3, 4.0] IQR and ``n <= MAX_THRESHOLD_N`` (larger n use the value at the cap, which is
conservative: the threshold only falls with n). Typical values (magnitude 1 IQR): n=5: 1.0,
n=10: ~0.56, n=20: ~0.09, n=30: ~0.01.

Magnitude: the effect that must not be missed, ``min_effect`` (relative, default 5 % of the
baseline median), expressed in units of the larger of the two samples' IQRs. The sample size
used is the smaller of the two samples (conservative).

``effect`` is the relative change of medians, ``(median_b - median_a) / median_a``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from harness.bench.stattests import (
    TestResult,
    _u_null_counts,
    ks_2samp,
    mann_whitney_u,
)

LOW_THRESHOLD = 0.01  # Pinpoint's significance level for "different"
HIGH_PERCENTILE = 99.0  # Pinpoint: about 1 % false "same" at the given magnitude
THRESHOLD_TRIALS = 4000  # simulated comparisons per (magnitude, n) cell; ~+-0.3 % on the quantile
THRESHOLD_EXACT_N = 20  # the simulation uses exact MWU p-values up to here, normal beyond
MAX_THRESHOLD_N = 60  # cells are simulated up to this sample size
MIN_MAGNITUDE_IQR, MAX_MAGNITUDE_IQR = 0.3, 4.0  # Pinpoint's table spans these
DEFAULT_MIN_EFFECT = 0.05  # 5 %: the slowdown the nightly must catch
MAX_REPEATS = 60  # more_repeats never suggests going past this many runs per side
IQR_PER_SIGMA = 1.3489795

Verdict = Literal["different", "same", "unknown"]


@dataclass(frozen=True)
class GateResult:
    """Outcome of one pairwise comparison (``a`` = baseline, ``b`` = tonight)."""

    verdict: Verdict
    p_value: float  # min(ks.p_value, mwu.p_value)
    ks: TestResult  # statistic D
    mwu: TestResult  # statistic U of the baseline sample
    low_threshold: float
    high_threshold: float
    effect: float  # relative change of medians, b vs a
    magnitude_iqr: float  # min_effect in units of the larger IQR
    median_a: float
    median_b: float
    n_a: int
    n_b: int
    more_repeats: int  # suggested extra runs per side when unknown, else 0


def _two_sided_p_by_u(n: int) -> np.ndarray:
    """Exact two-sided MWU p-value for every U in 0..n*n (equal sample sizes n)."""
    counts = np.array([float(c) for c in _u_null_counts(n, n)])
    total = counts.sum()
    upper = np.cumsum(counts[::-1])[::-1] / total  # P(U >= u)
    u = np.arange(n * n + 1)
    big = np.maximum(u, n * n - u)
    return np.asarray(np.minimum(1.0, 2.0 * upper[big]))


@lru_cache(maxsize=2048)
def _simulated_high_threshold(magnitude_tenths: int, n: int) -> float:
    if n < 2:
        return 1.0
    rng = np.random.default_rng(1_000 * magnitude_tenths + n)
    shift = magnitude_tenths / 10.0 * IQR_PER_SIGMA
    a = rng.standard_normal((THRESHOLD_TRIALS, n))
    b = rng.standard_normal((THRESHOLD_TRIALS, n)) + shift
    both = np.concatenate([a, b], axis=1)
    ranks = both.argsort(axis=1).argsort(axis=1)[:, :n] + 1  # continuous: no ties
    u = ranks.sum(axis=1) - n * (n + 1) // 2  # U of a
    if n <= THRESHOLD_EXACT_N:
        p = _two_sided_p_by_u(n)[u]
    else:
        sd = math.sqrt(n * n * (2 * n + 1) / 12.0)
        z = (np.maximum(u, n * n - u) - n * n / 2.0 - 0.5) / sd
        p = np.minimum(1.0, np.array([math.erfc(v / math.sqrt(2.0)) for v in z]))
    return float(np.percentile(p, HIGH_PERCENTILE))


def high_threshold(magnitude_iqr: float, n: int) -> float:
    """Pinpoint's high threshold for an effect of ``magnitude_iqr`` IQRs and n per side."""
    mag = min(max(magnitude_iqr, MIN_MAGNITUDE_IQR), MAX_MAGNITUDE_IQR)
    return _simulated_high_threshold(int(mag * 10 + 1e-9), min(n, MAX_THRESHOLD_N))


def _iqr(values: Sequence[float]) -> float:
    q1, q3 = np.percentile(np.asarray(values, dtype=float), [25.0, 75.0])
    return float(q3 - q1)


def _more_repeats(p: float, magnitude: float, n: int) -> int:
    """Extra runs per side after which this p-value would resolve (high threshold < p or
    <= LOW_THRESHOLD), capped so that a side has at most MAX_REPEATS runs. The high
    threshold falls with n, so the smallest such size is found by bisection."""

    def resolves(size: int) -> bool:
        h = high_threshold(magnitude, size)
        return h < p or h <= LOW_THRESHOLD

    lo, hi = n, MAX_REPEATS  # resolves(lo) is False (the caller's verdict is unknown)
    if not resolves(hi):
        return max(0, MAX_REPEATS - n)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if resolves(mid) else (mid, hi)
    return hi - n


def compare(a: Sequence[float], b: Sequence[float], *,
            min_effect: float = DEFAULT_MIN_EFFECT) -> GateResult:
    """Compare baseline ``a`` with tonight's ``b``; both need at least one value."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both samples need at least one value")
    ks = ks_2samp(a, b)
    mwu = mann_whitney_u(a, b)
    p = min(ks.p_value, mwu.p_value)
    med_a, med_b = float(np.median(a)), float(np.median(b))
    spread = max(_iqr(a), _iqr(b), 1e-12 * max(abs(med_a), 1.0))
    magnitude = abs(min_effect * med_a) / spread
    n = min(len(a), len(b))
    high = high_threshold(magnitude, n)
    verdict: Verdict
    if p <= LOW_THRESHOLD:
        verdict = "different"
    elif p > high:
        verdict = "same"
    else:
        verdict = "unknown"
    return GateResult(
        verdict=verdict, p_value=p, ks=ks, mwu=mwu, low_threshold=LOW_THRESHOLD,
        high_threshold=high, effect=(med_b - med_a) / med_a if med_a else math.inf,
        magnitude_iqr=magnitude, median_a=med_a, median_b=med_b, n_a=len(a), n_b=len(b),
        more_repeats=_more_repeats(p, magnitude, n) if verdict == "unknown" else 0)
