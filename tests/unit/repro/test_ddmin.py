"""ddmin as the paper has it: 1-minimal answers, unresolved outcomes, every configuration once."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.repro.ddmin import Ddmin, Outcome, ddmin, split


def fails_with(*culprits: int, unresolved: frozenset[int] = frozenset()):  # type: ignore[no-untyped-def]
    calls: Counter[frozenset[int]] = Counter()

    def test(config: tuple[int, ...]) -> Outcome:
        calls[frozenset(config)] += 1
        if unresolved & set(config):
            return Outcome.UNRESOLVED
        return Outcome.FAIL if set(culprits) <= set(config) else Outcome.PASS

    return test, calls


def test_split_sizes_differ_by_at_most_one() -> None:
    assert split([1, 2, 3, 4, 5], 2) == [(1, 2), (3, 4, 5)]
    assert [len(p) for p in split(list(range(7)), 3)] == [2, 2, 3]
    assert split([1, 2], 2) == [(1,), (2,)]


@pytest.mark.parametrize("culprit", [0, 3, 7])
def test_one_culprit_among_eight(culprit: int) -> None:
    test, calls = fails_with(culprit)
    result = ddmin(list(range(8)), test)
    assert result.minimal == (culprit,)
    assert result.tests == len(calls)
    assert result.tests <= 8  # ~log2(8) subsets and their siblings


def test_two_interacting_changes_are_both_kept() -> None:
    test, _ = fails_with(1, 6)
    assert ddmin(list(range(8)), test).minimal == (1, 6)


def test_every_configuration_is_tested_once() -> None:
    test, calls = fails_with(2, 5, 9)
    ddmin(list(range(12)), test)
    assert calls and max(calls.values()) == 1
    assert frozenset(range(12)) not in calls  # the full set is known to fail


def test_unresolved_outcomes_do_not_move_the_search() -> None:
    # Any configuration holding change 2 is unresolved (e.g. the phone dropped out):
    # ddmin still finds the culprit 1 through the configurations that resolve.
    test, _ = fails_with(1, unresolved=frozenset({2}))
    result = ddmin(list(range(6)), test)
    assert result.minimal == (1,)
    assert any(t.outcome is Outcome.UNRESOLVED for t in result.trials)


def test_all_unresolved_returns_the_whole_set() -> None:
    result = ddmin([1, 2, 3], lambda config: Outcome.UNRESOLVED)
    assert result.minimal == (1, 2, 3)


def test_seeded_outcomes_are_not_tested() -> None:
    test, calls = fails_with(0)
    runner = Ddmin([0, 1], test)
    runner.seed([0, 1], Outcome.FAIL)
    runner.seed([0], Outcome.FAIL)
    assert runner.run().minimal == (0,)
    assert not calls


def test_changes_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Ddmin([1, 1], lambda config: Outcome.PASS)
