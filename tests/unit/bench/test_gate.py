"""The Pinpoint-style pairwise gate."""

from __future__ import annotations

import numpy as np
import pytest

from harness.bench.gate import LOW_THRESHOLD, compare, high_threshold


def _runs(seed: int, level: float, n: int, noise: float = 0.02) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in level * np.exp(rng.normal(0.0, noise, n))]


# Pinpoint's published table (catapult thresholds.py, _HIGH_THRESHOLDS_PERFORMANCE), made by
# the same simulation with scipy's Mann-Whitney; ours must agree within simulation noise.
@pytest.mark.parametrize(("magnitude", "n", "pinpoint"), [
    (1.0, 10, 0.5708), (1.0, 20, 0.0859), (1.0, 30, 0.0095), (2.0, 5, 0.2101),
    (2.0, 8, 0.0240), (0.5, 40, 0.5223),
])
def test_high_threshold_agrees_with_pinpoints_table(magnitude: float, n: int,
                                                     pinpoint: float) -> None:
    assert high_threshold(magnitude, n) == pytest.approx(pinpoint, rel=0.3, abs=0.012)


def test_high_threshold_falls_with_sample_size_and_magnitude() -> None:
    assert high_threshold(1.0, 2) == 1.0
    assert high_threshold(1.0, 10) > high_threshold(1.0, 20) > high_threshold(1.0, 40)
    assert high_threshold(0.5, 20) > high_threshold(1.0, 20) > high_threshold(2.0, 20)


def test_a_clear_slowdown_is_different() -> None:
    r = compare(_runs(1, 100.0, 10), _runs(2, 110.0, 10))
    assert r.verdict == "different"
    assert r.p_value == min(r.ks.p_value, r.mwu.p_value) <= LOW_THRESHOLD
    assert r.effect == pytest.approx(0.10, abs=0.03)
    assert r.more_repeats == 0


def test_the_same_distribution_is_same_with_enough_runs() -> None:
    r = compare(_runs(3, 100.0, 20), _runs(4, 100.0, 20))
    assert r.verdict == "same"
    assert abs(r.effect) < 0.02


def test_few_runs_are_unknown_and_ask_for_more() -> None:
    r = compare(_runs(5, 100.0, 4, noise=0.05), _runs(6, 103.0, 4, noise=0.05))
    assert r.verdict == "unknown"
    assert r.more_repeats > 0
    more = compare(_runs(5, 100.0, 4 + r.more_repeats, noise=0.05),
                   _runs(6, 103.0, 4 + r.more_repeats, noise=0.05))
    assert more.n_a == 4 + r.more_repeats


def test_pinpoint_examples_need_both_tests() -> None:
    # catapult compare.py: MWU catches the first, KS the second (spread, not location)
    a, b = [0.0] * 20, [0.0] * 15 + [1.0] * 5
    assert compare([v + 1 for v in a], [v + 1 for v in b]).mwu.p_value < 0.05
    wide = [float(v) for v in [*range(10), *range(30, 40)]]
    r = compare([float(v) for v in range(10, 30)], wide)
    # Pinpoint's asymptotic KS says 0.0082 here; the exact distribution says 0.0123
    assert r.mwu.p_value > 0.4 and r.ks.p_value < 0.02 and r.verdict != "same"


def test_empty_sample_is_refused() -> None:
    with pytest.raises(ValueError):
        compare([], [1.0])
