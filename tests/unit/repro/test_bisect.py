"""Bisection's judging: detectors' verdicts, extra repeats, skips, the probe cache, timing.

The phone is replaced by a function of the plan (the e2e tests run the real one): each
plan's behaviour is decided by its environment, as the simulated binaries' is.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable

import pytest

from harness.errors import UsageError
from harness.recipes.load import render_recipe
from harness.recipes.overrides import apply_overrides, split_set_pairs
from harness.recipes.plan import Plan
from harness.repro.bisect import Bisector
from harness.repro.deltas import plan_digest
from harness.repro.verdict import RunVerdict

HARMLESS = ("MNN_POWER=1", "MNN_PREC=2", "OMP_NUM_THREADS=4", "CLML_MNN_ATTN_FP32=0",
            "MNN_MEM=1")


@pytest.fixture(scope="module")
def good() -> Plan:
    return render_recipe("sd15-512")


def bad_of(good: Plan, *env: str) -> Plan:
    return apply_overrides(good, split_set_pairs([f"pipeline.env.{e}" for e in env])[1])


def verdict(kind: str, seconds: float = 1.0) -> RunVerdict:
    return RunVerdict(kind, kind, "R", seconds, {})


def phone(rule: Callable[[dict[str, str]], str], calls: Counter[str]) -> Callable[[Plan],
                                                                                 RunVerdict]:
    def run(plan: Plan) -> RunVerdict:
        calls[plan_digest(plan)] += 1
        return verdict(rule(dict(plan.step("pipeline").env)))
    return run


def test_finds_the_tnn_switch_among_six(good: Plan) -> None:
    calls: Counter[str] = Counter()
    bad = bad_of(good, "CLML_NO_REUSE_TNN=0", *HARMLESS)
    rule = phone(lambda env: "blocks" if env["CLML_NO_REUSE_TNN"] != "1" else "clean", calls)
    result = Bisector(good, bad, rule, repeat=2).run()
    assert [c.key for c in result.minimal] == ["CLML_NO_REUSE_TNN"]
    assert result.mode == "verdict"
    assert len(result.changes) == 6
    assert max(calls.values()) == 2  # each plan ran `repeat` times at most: the cache
    assert result.probes and all(len(p.runs) == 2 for p in result.probes if not p.cached)


def test_a_phone_that_drops_out_is_a_skip_not_a_verdict(good: Plan) -> None:
    calls: Counter[str] = Counter()
    bad = bad_of(good, "CLML_NO_REUSE_TNN=0", *HARMLESS)

    def rule(env: dict[str, str]) -> str:
        if env.get("MNN_PREC") == "2" and env.get("MNN_POWER") != "1":
            return "lost"  # the phone vanished whenever this combination ran
        return "blocks" if env["CLML_NO_REUSE_TNN"] != "1" else "clean"

    result = Bisector(good, bad, phone(rule, calls)).run()
    assert [c.key for c in result.minimal] == ["CLML_NO_REUSE_TNN"]
    skipped = [p for p in result.probes if p.outcome.value == "unresolved"]
    assert all("skip" in p.why for p in skipped)


def test_a_flaky_probe_gets_more_repeats_then_a_majority(good: Plan) -> None:
    calls: Counter[str] = Counter()
    bad = bad_of(good, "CLML_NO_REUSE_TNN=0", "MNN_MEM=1")
    flips = itertools.cycle(["blocks", "blocks", "clean"])

    def rule(env: dict[str, str]) -> str:
        if env["CLML_NO_REUSE_TNN"] != "1":
            return next(flips) if env.get("MNN_MEM") != "1" else "blocks"
        return "clean"

    bisector = Bisector(good, bad, phone(rule, calls), repeat=3, max_repeats=6)
    result = bisector.run()
    assert [c.key for c in result.minimal] == ["CLML_NO_REUSE_TNN"]
    tnn_only = next(p for p in result.probes if [c.key for c in p.changes]
                    == ["CLML_NO_REUSE_TNN"])
    assert len(tnn_only.runs) == 6 and tnn_only.outcome.value == "fail"


def test_another_failure_is_unresolved(good: Plan) -> None:
    calls: Counter[str] = Counter()
    bad = bad_of(good, "CLML_NO_REUSE_TNN=0", "MNN_MEM=1")

    def rule(env: dict[str, str]) -> str:
        reuse, mem = env["CLML_NO_REUSE_TNN"] != "1", env.get("MNN_MEM") == "1"
        return "blocks" if reuse and mem else "failed" if reuse or mem else "clean"

    result = Bisector(good, bad, phone(rule, calls)).run()
    assert len(result.minimal) == 2  # neither alone shows the bad verdict
    assert {p.outcome.value for p in result.probes} == {"unresolved"}


def test_timing_mode_uses_the_gate(good: Plan) -> None:
    rng = random.Random(3)
    bad = bad_of(good, "OMP_NUM_THREADS=1", "MNN_MEM=1", "MNN_PREC=2")

    def run(plan: Plan) -> RunVerdict:
        slow = plan.step("pipeline").env.get("OMP_NUM_THREADS") == "1"
        return verdict("clean", (1.3 if slow else 1.0) * rng.gauss(1.0, 0.01))

    result = Bisector(good, bad, run, repeat=5, max_repeats=20).run()
    assert result.mode == "timing"
    assert [c.key for c in result.minimal] == ["OMP_NUM_THREADS"]


def test_nothing_to_bisect(good: Plan) -> None:
    with pytest.raises(UsageError, match="do not differ"):
        Bisector(good, good, lambda plan: verdict("clean"))
    same = bad_of(good, "MNN_MEM=1")
    with pytest.raises(UsageError, match="do not differ"):
        Bisector(good, same, lambda plan: verdict("clean", 1.0), repeat=3,
                 max_repeats=3).run()
