"""A sweep's matrix: ``--sweep VAR=a,b,c`` axes, resolved against a plan, expanded into cells.

``VAR`` is, first match wins:

- a recipe parameter (``steps``, ``early_decode_k``): the cell renders the recipe with it;
- an environment switch some step sets (``SDXL_EARLY_DECODE_K``): set in every step that
  sets it, as ``STEP.env.VAR=value`` step overrides (:mod:`harness.recipes.overrides`);
- a step override as ``--set`` takes it (``vae.env.MNN_PREC``, ``unet.unset``,
  ``vae.cwd``), for a switch no step sets yet.

Values are split at commas and kept verbatim; they reach the phone only through the plan's
quoted command lines. The cells are the cartesian product of the axes, in the order given
(the last axis varies fastest).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import UsageError
from harness.recipes.overrides import ENV_OVERRIDE_RE
from harness.recipes.plan import Plan
from harness.yamlpos import suggest

ENV_NAME_RE = re.compile(r"^[A-Za-z_]\w*$")
MAX_CELLS = 256  # a sweep bigger than this is a typo more often than a plan


@dataclass(frozen=True)
class Axis:
    var: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedAxis:
    var: str
    values: tuple[str, ...]
    kind: str  # param | env | override
    steps: tuple[str, ...] = ()  # env: the steps that set it

    def set_pairs(self, value: str) -> tuple[str, ...]:
        if self.kind == "env":
            return tuple(f"{step}.env.{self.var}={value}" for step in self.steps)
        return (f"{self.var}={value}",)


@dataclass(frozen=True)
class Cell:
    index: int
    settings: tuple[tuple[str, str], ...]  # (var, value) per axis
    set_pairs: tuple[str, ...]

    @property
    def label(self) -> str:
        return " ".join(f"{var}={value}" for var, value in self.settings)


def parse_axis(text: str) -> Axis:
    """``VAR=a,b,c`` -> Axis (a one-line UsageError for anything else)."""
    var, sep, values = text.partition("=")
    var = var.strip()
    if not sep or not var:
        raise UsageError(f"--sweep {text!r}: write VAR=a,b,c")
    items = tuple(values.split(","))
    if values == "" or any(v == "" for v in items):
        raise UsageError(f"--sweep {var}: empty value list or empty value in {values!r}")
    if len(set(items)) != len(items):
        raise UsageError(f"--sweep {var}: a value is repeated in {values!r}")
    return Axis(var, items)


def parse_axes(texts: Sequence[str]) -> list[Axis]:
    if not texts:
        raise UsageError("give at least one --sweep VAR=a,b,c")
    axes = [parse_axis(t) for t in texts]
    seen: set[str] = set()
    for axis in axes:
        if axis.var in seen:
            raise UsageError(f"--sweep {axis.var} is given twice")
        seen.add(axis.var)
    return axes


def resolve_axis(axis: Axis, plan: Plan) -> ResolvedAxis:
    if axis.var in plan.params:
        return ResolvedAxis(axis.var, axis.values, "param")
    steps = tuple(s.name for s in plan.steps if axis.var in s.env)
    if steps:
        return ResolvedAxis(axis.var, axis.values, "env", steps)
    if ENV_OVERRIDE_RE.match(f"{axis.var}=x"):
        return ResolvedAxis(axis.var, axis.values, "override")
    known = [*plan.params, *dict.fromkeys(k for s in plan.steps for k in s.env)]
    where = "; set a new switch with STEP.env.VAR" if ENV_NAME_RE.match(axis.var) else ""
    raise UsageError(f"--sweep {axis.var}: recipe {plan.recipe} has no parameter or "
                     f"environment switch {axis.var!r}{suggest(axis.var, known)}{where}")


def expand(axes: Sequence[ResolvedAxis]) -> list[Cell]:
    """The cartesian product of the axes' values."""
    total = 1
    for axis in axes:
        total *= len(axis.values)
    if total > MAX_CELLS:
        raise UsageError(f"the sweep has {total} cells, more than {MAX_CELLS}: narrow it")
    cells = []
    for index, combo in enumerate(itertools.product(*(a.values for a in axes))):
        settings = tuple((a.var, v) for a, v in zip(axes, combo, strict=True))
        pairs = tuple(p for a, v in zip(axes, combo, strict=True) for p in a.set_pairs(v))
        cells.append(Cell(index, settings, pairs))
    return cells


__all__ = ["Axis", "Cell", "ResolvedAxis", "expand", "parse_axes", "parse_axis",
           "resolve_axis"]
