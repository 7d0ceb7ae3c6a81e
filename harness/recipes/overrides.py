"""Step overrides given with ``--set``, shared by ``harness run`` and ``harness recipes render``.

``--set`` takes recipe parameters (``steps=30``) and, to reproduce failures, step overrides
applied to the rendered plan: ``STEP.env.KEY=VALUE``, ``STEP.unset=KEY``, ``STEP.cwd=DIR``
(an empty DIR removes the step's working directory).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.errors import UsageError
from harness.recipes.plan import Plan
from harness.yamlpos import suggest

ENV_OVERRIDE_RE = re.compile(
    r"^(?P<step>[\w-]+)\.(?:env\.(?P<key>[A-Za-z_]\w*)|(?P<field>cwd|unset))=(?P<value>.*)$",
    re.S)


@dataclass(frozen=True)
class StepOverride:
    step: str
    kind: str  # "env" | "cwd" | "unset"
    key: str
    value: str


def split_set_pairs(pairs: Sequence[str]) -> tuple[list[str], list[StepOverride]]:
    """Split ``--set`` pairs into recipe parameters and step overrides."""
    params: list[str] = []
    overrides: list[StepOverride] = []
    for pair in pairs:
        match = ENV_OVERRIDE_RE.match(pair)
        if match is None:
            params.append(pair)
        elif match["key"]:
            overrides.append(StepOverride(match["step"], "env", match["key"], match["value"]))
        else:
            overrides.append(StepOverride(match["step"], match["field"], match["value"],
                                          match["value"]))
    return params, overrides


def apply_overrides(plan: Plan, overrides: Sequence[StepOverride]) -> Plan:
    """The plan with the overrides applied (unknown steps or unset keys: UsageError)."""
    steps = {s.name: s for s in plan.steps}
    for o in overrides:
        if o.step not in steps:
            raise UsageError(f"--set {o.step}.{o.kind}: recipe {plan.recipe} has no step "
                             f"{o.step!r}{suggest(o.step, steps)}")
        step = steps[o.step]
        env = dict(step.env)
        if o.kind == "env":
            env[o.key] = o.value
            steps[o.step] = replace(step, env=env)
        elif o.kind == "unset":
            if o.key not in env:
                raise UsageError(f"--set {o.step}.unset={o.key}: the step sets no {o.key}"
                                 f"{suggest(o.key, env)}")
            del env[o.key]
            steps[o.step] = replace(step, env=env)
        else:
            if not o.value.startswith("/"):
                raise UsageError(f"--set {o.step}.cwd={o.value}: give an absolute device folder")
            steps[o.step] = replace(step, cwd=o.value)
    return replace(plan, steps=tuple(steps[s.name] for s in plan.steps))


__all__ = ["ENV_OVERRIDE_RE", "StepOverride", "apply_overrides", "split_set_pairs"]
