"""Two-sample tests written from the method, so that harness needs no scipy at run time.

- :func:`ks_2samp` — two-sided two-sample Kolmogorov–Smirnov. Exact for ``m*n <=
  KS_EXACT_MAX_CELLS``: the probability that a random lattice path from (0, 0) to (m, n)
  leaves the band ``|i/m - j/n| < D`` (Hodges 1957), counted with Python integers, so it is
  exact also for tiny p. Larger samples use the Kolmogorov limit distribution
  ``Q(sqrt(mn/(m+n)) * D)``. Ties are allowed: D is taken after all equal values.
- :func:`mann_whitney_u` — two-sided Mann–Whitney U. Exact when there are no ties and
  ``m*n <= MWU_EXACT_MAX_CELLS``: the null distribution of U is the coefficient list of the
  Gaussian binomial ``[m+n choose m]_q``. Otherwise the normal approximation with the tie
  correction ``var = mn/12 * ((N+1) - sum(t^3 - t) / (N(N-1)))`` and a 0.5 continuity
  correction (as ``scipy.stats.mannwhitneyu(method="asymptotic")``).
- :func:`student_t_test` — two-sided pooled-variance Student's t-test (the test Apache Otava
  uses for change-point significance); the t distribution through the regularised incomplete
  beta function (continued fraction, modified Lentz).

The unit tests check every p-value against scipy over many random cases.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

KS_EXACT_MAX_CELLS = 10_000  # lattice cells m*n: exact path counting stays under ~50 ms
MWU_EXACT_MAX_CELLS = 2_500  # U ranges over 0..m*n; the q-binomial costs about m*m*n steps


@dataclass(frozen=True)
class TestResult:
    """A test statistic, its two-sided p-value and how the p-value was found."""

    statistic: float
    p_value: float
    method: str  # "exact" or "asymptotic"


def _check(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) == 0 or len(y) == 0:
        raise ValueError("both samples need at least one value")


# ---- Kolmogorov–Smirnov ------------------------------------------------------------------

def _ks_scaled_d(xs: list[float], ys: list[float]) -> int:
    """max |F_x - F_y| * m * n, an integer (evaluated after each distinct value)."""
    m, n = len(xs), len(ys)
    best = 0
    for v in sorted(set(xs) | set(ys)):
        a = bisect.bisect_right(xs, v)
        b = bisect.bisect_right(ys, v)
        best = max(best, abs(a * n - b * m))
    return best


def _ks_exact_p(m: int, n: int, d_scaled: int) -> float:
    """P(D >= d) under H0: 1 - (paths staying strictly inside the band) / C(m+n, m)."""
    row = [0] * (n + 1)
    for i in range(m + 1):
        for j in range(n + 1):
            if abs(i * n - j * m) >= d_scaled:
                row[j] = 0
            elif i == 0 and j == 0:
                row[j] = 1
            else:
                row[j] = (row[j] if i > 0 else 0) + (row[j - 1] if j > 0 else 0)
    total = math.comb(m + n, m)
    return float(Fraction(total - row[n], total))


def kolmogorov_sf(lam: float) -> float:
    """Survival function of the Kolmogorov distribution, P(K > lam)."""
    if lam <= 0.0:
        return 1.0
    if lam < 1.0:  # the theta-function form converges fast for small lam
        s = sum(math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * lam * lam))
                for k in range(1, 12))
        return min(1.0, max(0.0, 1.0 - math.sqrt(2 * math.pi) / lam * s))
    s = math.fsum((1.0 if k % 2 else -1.0) * math.exp(-2.0 * k * k * lam * lam)
                  for k in range(1, 101))
    return min(1.0, max(0.0, 2.0 * s))


def ks_2samp(x: Sequence[float], y: Sequence[float], *, method: str = "auto") -> TestResult:
    """Two-sided two-sample KS test; ``method`` is "auto", "exact" or "asymptotic"."""
    _check(x, y)
    xs, ys = sorted(x), sorted(y)
    m, n = len(xs), len(ys)
    d_scaled = _ks_scaled_d(xs, ys)
    d = d_scaled / (m * n)
    if method == "auto":
        method = "exact" if m * n <= KS_EXACT_MAX_CELLS else "asymptotic"
    if method == "exact":
        p = _ks_exact_p(m, n, d_scaled) if d_scaled > 0 else 1.0
    elif method == "asymptotic":
        p = kolmogorov_sf(math.sqrt(m * n / (m + n)) * d)
    else:
        raise ValueError(f"unknown method {method!r}")
    return TestResult(d, p, method)


# ---- Mann–Whitney U -----------------------------------------------------------------------

def rank_with_ties(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Fractional ranks (1-based, ties get their mean rank) and the sizes of tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    groups: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        groups.append(j - i + 1)
        i = j + 1
    return ranks, groups


@lru_cache(maxsize=256)
def _u_null_counts(m: int, n: int) -> tuple[int, ...]:
    """counts[u] = number of arrangements with U = u: coefficients of [m+n choose m]_q."""
    poly = [1]  # [n choose 0]_q
    for i in range(1, m + 1):  # [n+i choose i]_q = [n+i-1 choose i-1]_q (1-q^(n+i))/(1-q^i)
        shift = n + i
        numer = poly + [0] * shift
        for k in range(len(numer) - 1, shift - 1, -1):
            numer[k] -= poly[k - shift] if k - shift < len(poly) else 0
        for k in range(i, len(numer)):
            numer[k] += numer[k - i]
        poly = numer[: i * n + 1]
    return tuple(poly)


def _mwu_exact_p(u: float, m: int, n: int) -> float:
    counts = _u_null_counts(m, n)
    total = sum(counts)
    big = max(u, m * n - u)
    tail = sum(counts[math.ceil(big):])
    return min(1.0, float(Fraction(2 * tail, total)))


def mann_whitney_u(x: Sequence[float], y: Sequence[float], *,
                   method: str = "auto") -> TestResult:
    """Two-sided Mann–Whitney U; the statistic is U of ``x`` (R_x - m(m+1)/2)."""
    _check(x, y)
    m, n = len(x), len(y)
    ranks, groups = rank_with_ties([*x, *y])
    u1 = sum(ranks[:m]) - m * (m + 1) / 2.0
    ties = any(g > 1 for g in groups)
    if method == "auto":
        method = "exact" if not ties and m * n <= MWU_EXACT_MAX_CELLS else "asymptotic"
    if method == "exact":
        if ties:
            raise ValueError("the exact Mann-Whitney distribution needs samples without ties")
        return TestResult(u1, _mwu_exact_p(u1, m, n), "exact")
    if method != "asymptotic":
        raise ValueError(f"unknown method {method!r}")
    big_n = m + n
    tie_term = sum(g**3 - g for g in groups) / (big_n * (big_n - 1)) if big_n > 1 else 0.0
    var = m * n / 12.0 * ((big_n + 1) - tie_term)
    if var <= 0.0:
        return TestResult(u1, 1.0, "asymptotic")
    big = max(u1, m * n - u1)
    z = (big - m * n / 2.0 - 0.5) / math.sqrt(var)
    return TestResult(u1, min(1.0, math.erfc(z / math.sqrt(2.0))), "asymptotic")


# ---- Student's t --------------------------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for k in range(1, 500):
        for num in (k * (b - k) * x / ((a + 2 * k - 1) * (a + 2 * k)),
                    -(a + k) * (a + b + k) * x / ((a + 2 * k) * (a + 2 * k + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def student_t_test(x: Sequence[float], y: Sequence[float]) -> TestResult:
    """Two-sided pooled-variance t-test; p = 1 when it is undefined (df < 1, no spread)."""
    _check(x, y)
    m, n = len(x), len(y)
    df = m + n - 2
    mx, my = math.fsum(x) / m, math.fsum(y) / n
    if df < 1:
        return TestResult(0.0, 1.0, "exact")
    ss = math.fsum((v - mx) ** 2 for v in x) + math.fsum((v - my) ** 2 for v in y)
    se = math.sqrt(ss / df * (1.0 / m + 1.0 / n))
    if se == 0.0:
        return TestResult(0.0 if mx == my else math.copysign(math.inf, mx - my),
                          1.0 if mx == my else 0.0, "exact")
    t = (mx - my) / se
    return TestResult(t, t_two_sided_p(t, df), "exact")
