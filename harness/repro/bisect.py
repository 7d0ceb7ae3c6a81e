"""``harness repro bisect``: which of the changes from a good plan to a bad one flips it.

1. Both ends run ``repeat`` times on one phone. Different verdicts (``clean`` against
   ``blocks``, ``oom``, ``nan``, ``failed``) make a *verdict* bisection; the same verdict
   and step times the pairwise gate (:func:`harness.bench.gate.compare`) calls
   ``different`` make a *timing* bisection; otherwise there is nothing to bisect.
2. :func:`harness.repro.deltas.differences` lists the changes; ddmin
   (:mod:`harness.repro.ddmin`) tries subsets of them applied to the good plan.
3. A probe runs ``repeat`` times. Verdict mode: all resolved repeats show the bad verdict:
   FAIL; the good one: PASS; a mix: ``repeat`` more runs, then a clear majority (two
   thirds) or UNRESOLVED; any other verdict (another failure: an inconsistent combination
   of changes) is UNRESOLVED. Timing mode: the probe's times against both ends' with the
   gate; ``unknown`` gets the extra repeats the gate asks for (capped at ``max_repeats``).
   A phone that dropped out gives no verdict; a probe with no resolved run is UNRESOLVED
   (a "skip", as ``git bisect skip``), never PASS or FAIL.
4. Probe outcomes are cached by the probe plan's digest: two subsets that give the same
   plan run once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.bench.gate import compare
from harness.errors import UsageError
from harness.recipes.plan import Plan
from harness.repro.ddmin import Ddmin, Outcome
from harness.repro.deltas import Change, apply, differences, plan_digest
from harness.repro.verdict import RunVerdict

MAJORITY = 2 / 3  # share of a mixed probe's runs one side needs after the extra repeats
RunOnce = Callable[[Plan], RunVerdict]


@dataclass(frozen=True)
class Probe:
    number: int
    changes: tuple[Change, ...]
    outcome: Outcome
    digest: str
    runs: tuple[RunVerdict, ...]
    why: str
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "changes": [c.describe() for c in self.changes],
                "outcome": self.outcome.value, "digest": self.digest, "why": self.why,
                "cached": self.cached, "runs": [r.to_dict() for r in self.runs]}


@dataclass
class BisectEvents:
    baseline: Callable[[str, list[RunVerdict]], None] = lambda end, runs: None
    probe: Callable[[Probe], None] = lambda probe: None
    run_done: Callable[[RunVerdict], None] = lambda verdict: None


@dataclass
class BisectResult:
    mode: str  # verdict | timing
    good: list[RunVerdict]
    bad: list[RunVerdict]
    changes: list[Change]
    minimal: tuple[Change, ...]
    probes: list[Probe] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return sum(len(p.runs) for p in self.probes if not p.cached)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "good": [v.to_dict() for v in self.good],
                "bad": [v.to_dict() for v in self.bad],
                "changes": [c.describe() for c in self.changes],
                "answer": [c.describe() for c in self.minimal],
                "probes": [p.to_dict() for p in self.probes],
                "probe_count": len(self.probes), "runs": self.runs}


def _resolved(runs: Sequence[RunVerdict]) -> list[RunVerdict]:
    return [r for r in runs if r.kind != "lost"]


def _times(runs: Sequence[RunVerdict]) -> list[float]:
    return [r.seconds for r in runs if r.seconds is not None]


class Bisector:
    def __init__(self, good: Plan, bad: Plan, run_once: RunOnce, repeat: int = 1,
                 max_repeats: int = 12, events: BisectEvents | None = None) -> None:
        if repeat < 1 or max_repeats < repeat:
            raise UsageError("--repeat must be at least 1 and at most the repeat cap")
        self.good, self.bad = good, bad
        self.run_once = run_once
        self.repeat, self.max_repeats = repeat, max_repeats
        self.events = events or BisectEvents()
        self.changes = differences(good, bad)
        if not self.changes:
            raise UsageError("the good and bad plans do not differ: nothing to bisect")
        self._cache: dict[str, tuple[Outcome, tuple[RunVerdict, ...], str]] = {}
        self.probes: list[Probe] = []
        self.mode = "verdict"
        self.good_runs: list[RunVerdict] = []
        self.bad_runs: list[RunVerdict] = []

    def _runs(self, plan: Plan, count: int) -> list[RunVerdict]:
        out = []
        for _ in range(count):
            verdict = self.run_once(plan)
            self.events.run_done(verdict)
            out.append(verdict)
        return out

    def _baseline(self) -> None:
        self.good_runs = self._runs(self.good, self.repeat)
        self.events.baseline("good", self.good_runs)
        self.bad_runs = self._runs(self.bad, self.repeat)
        self.events.baseline("bad", self.bad_runs)
        for name, runs in (("good", self.good_runs), ("bad", self.bad_runs)):
            kinds = {r.kind for r in _resolved(runs)}
            if not kinds:
                raise UsageError(f"the {name} plan gave no verdict: the phone dropped out "
                                 f"({runs[-1].detail})")
            if len(kinds) > 1:
                raise UsageError(f"the {name} plan is not reproducible: its runs gave "
                                 f"{', '.join(sorted(kinds))}")
        good_kind, bad_kind = self._kinds()
        if good_kind != bad_kind:
            return
        self.mode = "timing"
        while True:
            gate = compare(_times(self.good_runs), _times(self.bad_runs))
            if gate.verdict == "different":
                return
            extra = min(gate.more_repeats, self.max_repeats - len(self.good_runs))
            if gate.verdict == "same" or extra <= 0:
                raise UsageError(f"the good and bad plans both give {good_kind} and their "
                                 f"step times do not differ (gate: {gate.verdict}, p="
                                 f"{gate.p_value:.3g}): nothing to bisect")
            self.good_runs += self._runs(self.good, extra)
            self.bad_runs += self._runs(self.bad, extra)

    def _kinds(self) -> tuple[str, str]:
        return _resolved(self.good_runs)[0].kind, _resolved(self.bad_runs)[0].kind

    def _judge_verdicts(self, runs: list[RunVerdict], plan: Plan) -> tuple[Outcome, str]:
        good_kind, bad_kind = self._kinds()
        for attempt in range(2):
            resolved = _resolved(runs)
            if not resolved:
                return Outcome.UNRESOLVED, f"skip: the phone dropped out ({runs[-1].detail})"
            kinds = [r.kind for r in resolved]
            others = sorted({k for k in kinds if k not in (good_kind, bad_kind)})
            if others:
                return Outcome.UNRESOLVED, f"neither end's verdict: {', '.join(others)}"
            bad_share = kinds.count(bad_kind) / len(kinds)
            if bad_share in (0.0, 1.0):
                outcome = Outcome.FAIL if bad_share else Outcome.PASS
                return outcome, f"{kinds[0]} {len(kinds)}/{len(kinds)}"
            if attempt == 0 and len(runs) < self.max_repeats:
                runs += self._runs(plan, min(self.repeat, self.max_repeats - len(runs)))
                continue
            if bad_share >= MAJORITY:
                return Outcome.FAIL, f"{bad_kind} {kinds.count(bad_kind)}/{len(kinds)}"
            if 1 - bad_share >= MAJORITY:
                return Outcome.PASS, f"{good_kind} {len(kinds) - kinds.count(bad_kind)}/" \
                                     f"{len(kinds)}"
        return Outcome.UNRESOLVED, f"inconclusive: {bad_kind} in {kinds.count(bad_kind)} " \
                                   f"of {len(kinds)} runs"

    def _judge_timing(self, runs: list[RunVerdict], plan: Plan) -> tuple[Outcome, str]:
        kind = self._kinds()[0]
        while True:
            resolved = _resolved(runs)
            if not resolved:
                return Outcome.UNRESOLVED, f"skip: the phone dropped out ({runs[-1].detail})"
            if any(r.kind != kind for r in resolved):
                return Outcome.UNRESOLVED, f"verdict {resolved[0].kind}, not {kind}"
            times = _times(resolved)
            to_good = compare(_times(self.good_runs), times)
            to_bad = compare(_times(self.bad_runs), times)
            why = f"vs good: {to_good.verdict}, vs bad: {to_bad.verdict}"
            if to_bad.verdict == "different" and to_good.verdict != "different":
                return Outcome.PASS, why
            if to_good.verdict == "different" and to_bad.verdict != "different":
                return Outcome.FAIL, why
            extra = min(max(to_good.more_repeats, to_bad.more_repeats, self.repeat),
                        self.max_repeats - len(runs))
            if extra <= 0 or "unknown" not in (to_good.verdict, to_bad.verdict):
                return Outcome.UNRESOLVED, why
            runs += self._runs(plan, extra)

    def test(self, config: tuple[Change, ...]) -> Outcome:
        plan = apply(self.good, self.bad, config)
        digest = plan_digest(plan)
        cached = self._cache.get(digest)
        if cached is None:
            runs = self._runs(plan, self.repeat)
            judge = self._judge_verdicts if self.mode == "verdict" else self._judge_timing
            outcome, why = judge(runs, plan)
            cached = (outcome, tuple(runs), why)
            self._cache[digest] = cached
            hit = False
        else:
            hit = True
        probe = Probe(len(self.probes) + 1, config, cached[0], digest, cached[1], cached[2],
                      hit)
        self.probes.append(probe)
        self.events.probe(probe)
        return cached[0]

    def run(self) -> BisectResult:
        self._baseline()
        search: Ddmin[Change] = Ddmin(self.changes, self.test)
        search.seed(self.changes, Outcome.FAIL)
        search.seed((), Outcome.PASS)
        minimal = search.run().minimal
        return BisectResult(self.mode, self.good_runs, self.bad_runs, self.changes, minimal,
                            self.probes)


def bisect(good: Plan, bad: Plan, run_once: RunOnce, repeat: int = 1, max_repeats: int = 12,
           events: BisectEvents | None = None) -> BisectResult:
    return Bisector(good, bad, run_once, repeat, max_repeats, events).run()


__all__ = ["BisectEvents", "BisectResult", "Bisector", "Probe", "bisect"]
