"""Per-series summary and stability verdict.

A series is the valid measured runs of one (phone model + serial, recipe, metric). Invalid
runs (throttled, failed, ...) are never passed here: the caller keeps and shows them apart.

:func:`summarize` returns a :class:`SeriesSummary`:

- ``median``, ``q1``, ``q3``, ``iqr`` (quartiles by linear interpolation, numpy's default),
  ``min``, ``max``, ``n``, ``mean``, ``std`` (sample, ddof=1);
- ``cv`` — the classic coefficient of variation ``std / mean``; one outlier run inflates it;
- ``robust_cv`` — ``IQR / (1.349 * median)``: for normal data it estimates the same number
  as ``cv`` (the IQR of a normal is 1.349 sigma) but an outlier run barely moves it. For
  n < 4 the quartiles mean little, so ``robust_cv`` falls back to
  ``1.4826 * MAD / median`` (MAD = median absolute deviation; normal-consistent).
- ``verdict`` — ``stable`` when ``robust_cv <= max_cv`` (default
  :data:`DEFAULT_MAX_CV` = 0.05, i.e. 5 %) and ``n >= min_n`` (default 3); else ``noisy``, with
  ``reason`` in words. The robust CV is used so that one slow run (a background job) does
  not make a series noisy; the classic ``cv`` is kept for reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

DEFAULT_MAX_CV = 0.05  # 5 %: per-run noise on a cooled phone is a few %; above that, distrust
DEFAULT_MIN_N = 3  # fewer runs give no usable spread
IQR_PER_SIGMA = 1.3489795  # IQR of the standard normal: Phi^-1(0.75) - Phi^-1(0.25)
MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(0.75): MAD of a normal times this estimates sigma

Stability = Literal["stable", "noisy"]


@dataclass(frozen=True)
class SeriesSummary:
    """Summary statistics of one series' valid runs (see the module docstring)."""

    n: int
    median: float
    q1: float
    q3: float
    iqr: float
    min: float
    max: float
    mean: float
    std: float
    cv: float
    robust_cv: float
    verdict: Stability
    reason: str


def robust_cv(values: Sequence[float]) -> float:
    """IQR / (1.349 * median) for n >= 4, else 1.4826 * MAD / median; 0.0 for one value."""
    arr = np.asarray(values, dtype=float)
    med = float(np.median(arr))
    if arr.size < 2 or med == 0.0:
        return 0.0
    if arr.size >= 4:
        q1, q3 = np.percentile(arr, [25.0, 75.0])
        return float((q3 - q1) / (IQR_PER_SIGMA * abs(med)))
    mad = float(np.median(np.abs(arr - med)))
    return MAD_TO_SIGMA * mad / abs(med)


def summarize(values: Sequence[float], *, max_cv: float = DEFAULT_MAX_CV,
              min_n: int = DEFAULT_MIN_N) -> SeriesSummary:
    """Summarise one series' values; raises ValueError on an empty series."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("a series needs at least one value")
    q1, med, q3 = (float(v) for v in np.percentile(arr, [25.0, 50.0, 75.0]))
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    rcv = robust_cv(values)
    verdict: Stability
    if arr.size < min_n:
        verdict, reason = "noisy", f"only {arr.size} run(s); at least {min_n} are needed"
    elif rcv > max_cv:
        verdict, reason = "noisy", f"robust CV {rcv:.1%} is above {max_cv:.1%}"
    else:
        verdict, reason = "stable", f"robust CV {rcv:.1%} is within {max_cv:.1%}"
    return SeriesSummary(
        n=int(arr.size), median=med, q1=q1, q3=q3, iqr=q3 - q1,
        min=float(arr.min()), max=float(arr.max()), mean=mean, std=std,
        cv=std / abs(mean) if mean else 0.0, robust_cv=rcv, verdict=verdict, reason=reason)
