"""The nightly alert confirmed against the same phone's other series (a reference)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.bench.changepoint import confirmed_alert, nightly_alert, phone_factors


def test_phone_factors_are_the_median_ratio_per_night() -> None:
    a = [[10.0], [10.0], [11.0]]
    b = [[20.0, 20.0], [22.0], [22.0]]
    assert phone_factors([a, b]) == pytest.approx([(1 + 20 / 22) / 2, 1.0, 1.05])
    assert phone_factors([[[10.0], []]]) is None, "a night without any control"
    assert phone_factors([a, [[], [], []]]) == pytest.approx([1.0, 1.0, 1.1])
    assert phone_factors([]) is None


def nights(rng: np.random.Generator, shared: np.ndarray, step_at: int | None,
           base: float) -> list[list[float]]:
    out = []
    for t, offset in enumerate(shared):
        level = base * offset * (1.05 if step_at is not None and t >= step_at else 1.0)
        out.append([level * float(np.exp(rng.normal(0, 0.004))) for _ in range(5)])
    return out


def test_a_shared_shift_is_phone_wide_and_an_own_change_is_not() -> None:
    rng = np.random.default_rng(4)
    shared = np.exp(rng.normal(0, 0.003, 20))
    shared[18:] *= 1.05  # the whole phone, both recipes
    series = nights(rng, shared, None, 9.0)
    control = nights(rng, shared, None, 60.0)
    raw = nightly_alert(series)
    assert raw is not None and raw.alerted
    checked = confirmed_alert(series, [control])
    assert checked is not None and not checked.alerted and checked.phone_wide
    own = nights(rng, np.exp(rng.normal(0, 0.003, 20)), 18, 9.0)
    steady = nights(rng, np.exp(rng.normal(0, 0.003, 20)), None, 60.0)
    confirmed = confirmed_alert(own, [steady])
    assert confirmed is not None and confirmed.alerted and not confirmed.phone_wide
    alone = confirmed_alert(series, [])
    assert alone is not None and alone.alerted, "without controls the plain rule decides"
