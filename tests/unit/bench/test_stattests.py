"""KS, MWU and t-test p-values against scipy over many random cases (scipy: test-only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.bench.stattests import (
    betainc,
    kolmogorov_sf,
    ks_2samp,
    mann_whitney_u,
    rank_with_ties,
    student_t_test,
)


def _cases(seed: int, count: int, *, ties: bool) -> list[tuple[list[float], list[float]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        m, n = int(rng.integers(1, 25)), int(rng.integers(1, 25))
        x = rng.normal(0.0, 1.0, m) * rng.uniform(0.5, 2.0)
        y = rng.normal(rng.uniform(-1.5, 1.5), rng.uniform(0.5, 2.0), n)
        if ties:
            x, y = np.round(x, 0), np.round(y, 0)
        out.append((x.tolist(), y.tolist()))
    return out


@pytest.mark.parametrize("ties", [False, True])
def test_ks_exact_matches_scipy(ties: bool) -> None:
    for x, y in _cases(1, 60, ties=ties):
        mine = ks_2samp(x, y, method="exact")
        ref = stats.ks_2samp(x, y, method="exact")
        assert mine.statistic == pytest.approx(ref.statistic, abs=1e-12)
        assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-14)


def test_ks_asymptotic_is_the_kolmogorov_limit() -> None:
    for x, y in _cases(2, 40, ties=False):
        m, n = len(x), len(y)
        d = stats.ks_2samp(x, y).statistic
        mine = ks_2samp(x, y, method="asymptotic")
        assert mine.p_value == pytest.approx(
            stats.kstwobign.sf(math.sqrt(m * n / (m + n)) * d), rel=1e-9, abs=1e-14)
    for lam in np.linspace(0.05, 3.0, 60):
        assert kolmogorov_sf(float(lam)) == pytest.approx(stats.kstwobign.sf(lam), abs=1e-12)


def test_ks_auto_goes_asymptotic_for_large_samples() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=150).tolist(), rng.normal(0.3, 1.0, 150).tolist()
    result = ks_2samp(x, y)
    assert result.method == "asymptotic"
    assert result.p_value == pytest.approx(stats.ks_2samp(x, y, method="exact").pvalue,
                                           rel=0.15)


def test_mwu_exact_matches_scipy() -> None:
    for x, y in _cases(4, 60, ties=False):
        mine = mann_whitney_u(x, y, method="exact")
        ref = stats.mannwhitneyu(x, y, method="exact")
        assert mine.statistic == ref.statistic
        assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize("ties", [False, True])
def test_mwu_asymptotic_with_tie_correction_matches_scipy(ties: bool) -> None:
    for x, y in _cases(5, 60, ties=ties):
        mine = mann_whitney_u(x, y, method="asymptotic")
        ref = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True)
        assert mine.statistic == ref.statistic
        assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_mwu_auto_is_exact_without_ties_and_asymptotic_with_them() -> None:
    assert mann_whitney_u([1.0, 2.0, 3.0], [4.0, 5.0]).method == "exact"
    assert mann_whitney_u([1.0, 2.0, 2.0], [4.0, 5.0]).method == "asymptotic"
    with pytest.raises(ValueError, match="ties"):
        mann_whitney_u([1.0, 1.0], [2.0], method="exact")


def test_all_tied_samples_are_the_same() -> None:
    assert mann_whitney_u([3.0] * 4, [3.0] * 5).p_value == 1.0
    assert ks_2samp([3.0] * 4, [3.0] * 5).p_value == 1.0


def test_ranks_share_ties() -> None:
    ranks, groups = rank_with_ties([10.0, 20.0, 10.0, 30.0])
    assert ranks == [1.5, 3.0, 1.5, 4.0]
    assert sorted(groups) == [1, 1, 2]


def test_t_test_matches_scipy() -> None:
    for x, y in _cases(6, 60, ties=False):
        if len(x) + len(y) < 3:
            continue
        mine = student_t_test(x, y)
        ref = stats.ttest_ind(x, y)
        assert mine.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-15)


def test_betainc_matches_scipy() -> None:
    from scipy import special
    for a, b, x in [(0.5, 0.5, 0.3), (2.0, 0.5, 0.99), (15.0, 0.5, 0.2), (1.0, 3.0, 0.7)]:
        assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-10)


def test_empty_samples_are_refused() -> None:
    with pytest.raises(ValueError):
        ks_2samp([], [1.0])
    with pytest.raises(ValueError):
        mann_whitney_u([1.0], [])
