"""Per-series summaries and the stability verdict."""

from __future__ import annotations

import numpy as np
import pytest

from harness.bench.series import robust_cv, summarize


def test_summary_numbers() -> None:
    s = summarize([10.0, 11.0, 12.0, 13.0, 14.0])
    assert (s.n, s.median, s.q1, s.q3, s.iqr, s.min, s.max) == (5, 12.0, 11.0, 13.0, 2.0,
                                                                 10.0, 14.0)
    assert s.mean == 12.0
    assert s.std == pytest.approx(np.std([10, 11, 12, 13, 14], ddof=1))
    assert s.cv == pytest.approx(s.std / 12.0)
    assert s.robust_cv == pytest.approx(2.0 / (1.3489795 * 12.0))


def test_robust_cv_estimates_sigma_for_normal_data_and_ignores_an_outlier() -> None:
    rng = np.random.default_rng(0)
    values = (100.0 + rng.normal(0.0, 3.0, 4000)).tolist()
    assert robust_cv(values) == pytest.approx(0.03, rel=0.05)
    with_outlier = [100.0, 101.0, 99.0, 100.5, 99.5, 100.2, 180.0]
    assert summarize(with_outlier).cv > 0.2
    assert summarize(with_outlier).robust_cv < 0.02
    assert summarize(with_outlier).verdict == "stable"


def test_small_series_use_mad() -> None:
    assert robust_cv([10.0, 10.0, 12.0]) == pytest.approx(1.4826 * 0.0 / 10.0)
    assert robust_cv([9.0, 10.0, 11.0]) == pytest.approx(1.4826 * 1.0 / 10.0)
    assert robust_cv([5.0]) == 0.0


def test_verdicts() -> None:
    assert summarize([10.0, 10.1, 9.9, 10.05]).verdict == "stable"
    noisy = summarize([10.0, 12.0, 8.0, 11.0, 9.0])
    assert noisy.verdict == "noisy" and "above" in noisy.reason
    assert summarize([10.0, 12.0, 8.0, 11.0, 9.0], max_cv=0.5).verdict == "stable"
    few = summarize([10.0, 10.0])
    assert few.verdict == "noisy" and "2 run(s)" in few.reason


def test_empty_series_is_refused() -> None:
    with pytest.raises(ValueError):
        summarize([])
