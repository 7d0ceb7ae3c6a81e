"""Delta debugging: Zeller and Hildebrandt's ddmin, with unresolved outcomes and a cache.

From A. Zeller, R. Hildebrandt, "Simplifying and Isolating Failure-Inducing Input", IEEE
TSE 28(2), 2002, section 3 (the minimizing delta debugging algorithm ``ddmin``). A test
maps a configuration (a subset of the changes ``c_x``) to PASS (the good behaviour), FAIL
(the bad one) or UNRESOLVED (neither: another failure, an inconsistent combination, a phone
that dropped out). Given ``test(c_x) = FAIL`` (and ``test({}) = PASS``)::

    ddmin(c) = ddmin2(c, 2)
    ddmin2(c', n) =
        ddmin2(D_i, 2)               if test(D_i) = FAIL for some i     ("reduce to subset")
        ddmin2(c' - D_i, max(n-1,2)) if test(c' - D_i) = FAIL for some i ("reduce to complement")
        ddmin2(c', min(|c'|, 2n))    if n < |c'|                        ("increase granularity")
        c'                           otherwise

where ``c' = D_1 u ... u D_n`` is split into ``n`` parts of (nearly) equal size. Only FAIL
moves the search; PASS and UNRESOLVED alike leave the configuration as it is, which is how
the paper's ddmin copes with unresolved outcomes (the result is then 1-minimal only with
respect to the resolved tests). With ``n = 2`` the complements are the subsets themselves, so
they are not tried twice. Every outcome is cached by configuration: a configuration is
tested at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    UNRESOLVED = "unresolved"


@dataclass(frozen=True)
class Trial(Generic[T]):
    """One call of the test: the configuration tried and what it gave."""

    config: tuple[T, ...]
    outcome: Outcome
    phase: str  # subset | complement | check


@dataclass
class DdminResult(Generic[T]):
    minimal: tuple[T, ...]
    trials: list[Trial[T]] = field(default_factory=list)

    @property
    def tests(self) -> int:
        """How many configurations were really tested (cache hits not counted)."""
        return len(self.trials)


def split(items: Sequence[T], n: int) -> list[tuple[T, ...]]:
    """``items`` cut into ``n`` consecutive parts whose sizes differ by at most one."""
    parts, start = [], 0
    for i in range(n):
        size = (len(items) - start) // (n - i)
        parts.append(tuple(items[start:start + size]))
        start += size
    return parts


class Ddmin(Generic[T]):
    """ddmin over ``changes`` with ``test``; outcomes cached by configuration."""

    def __init__(self, changes: Sequence[T], test: Callable[[tuple[T, ...]], Outcome],
                 on_trial: Callable[[Trial[T]], None] | None = None) -> None:
        self.changes = tuple(changes)
        if len(set(self.changes)) != len(self.changes):
            raise ValueError("ddmin needs distinct changes")
        self._test = test
        self._on_trial = on_trial or (lambda trial: None)
        self._cache: dict[frozenset[T], Outcome] = {}
        self.result: DdminResult[T] = DdminResult(self.changes)

    def _ordered(self, config: frozenset[T]) -> tuple[T, ...]:
        return tuple(c for c in self.changes if c in config)

    def test(self, config: Sequence[T], phase: str = "check") -> Outcome:
        key = frozenset(config)
        if key in self._cache:
            return self._cache[key]
        ordered = self._ordered(key)
        outcome = self._test(ordered)
        self._cache[key] = outcome
        trial = Trial(ordered, outcome, phase)
        self.result.trials.append(trial)
        self._on_trial(trial)
        return outcome

    def seed(self, config: Sequence[T], outcome: Outcome) -> None:
        """Tell the cache an outcome already known (e.g. the good and the bad run)."""
        self._cache[frozenset(config)] = outcome

    def run(self) -> DdminResult[T]:
        current: tuple[T, ...] = self.changes
        n = 2
        while len(current) >= 2:
            parts = split(current, n)
            reduced = next((p for p in parts if self.test(p, "subset") is Outcome.FAIL), None)
            if reduced is not None:
                current, n = reduced, 2
                continue
            if n > 2:
                complement = None
                for part in parts:
                    rest = tuple(c for c in current if c not in part)
                    if self.test(rest, "complement") is Outcome.FAIL:
                        complement = rest
                        break
                if complement is not None:
                    current, n = complement, max(n - 1, 2)
                    continue
            if n < len(current):
                n = min(len(current), 2 * n)
                continue
            break
        self.result.minimal = current
        return self.result


def ddmin(changes: Sequence[T], test: Callable[[tuple[T, ...]], Outcome],
          on_trial: Callable[[Trial[T]], None] | None = None) -> DdminResult[T]:
    """A 1-minimal subset of ``changes`` that still makes ``test`` FAIL (all of ``changes``
    is assumed to FAIL; it is not tested again)."""
    runner = Ddmin(changes, test, on_trial)
    runner.seed(changes, Outcome.FAIL)
    return runner.run()


__all__ = ["Ddmin", "DdminResult", "Outcome", "Trial", "ddmin", "split"]
