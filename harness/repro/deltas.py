"""The differences between two plans, as independent changes that bisection can combine.

A change is one of: a step's environment variable set, changed or unset; one element of a
library-path reorder (``LD_LIBRARY_PATH``: a folder added, dropped, or moved); one argument;
the working directory; the binary; the declared outputs; the token ids. :func:`apply`
puts any subset of them onto the good plan; all of them give the bad plan's steps.

Library paths are not diffed as strings. The folders both paths keep in the same relative
order (a longest common subsequence) are the skeleton; every other folder of the bad path
is an ``add`` (new) or a ``move`` (in the good path elsewhere), placed right after the
skeleton folder that precedes it in the bad path; a good folder missing from the bad path is
a ``drop``. So "``/data/local/tmp`` put before ``MNN_fuse``" is one change, whatever else
moved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from harness.errors import UsageError
from harness.recipes.plan import Plan, PlanStep

PATH_VARS = ("LD_LIBRARY_PATH",)  # colon lists whose order matters element by element


@dataclass(frozen=True)
class Change:
    """One difference: in ``step`` (``""`` for the plan), ``kind`` of ``key``."""

    step: str
    # env | path-add | path-drop | path-move | arg | argv | cwd | binary | outputs | tokens
    kind: str
    key: str  # env var / path var, argv index, or ""
    good: str | None
    bad: str | None
    item: str = ""  # the library-path folder of a path-* change
    anchor: str | None = None  # path-add/move: the skeleton folder it follows (None: first)

    def describe(self) -> str:
        where = f"{self.step}: " if self.step else ""
        if self.kind == "env":
            if self.bad is None:
                return f"{where}unset {self.key} (good: {self.key}={self.good})"
            if self.good is None:
                return f"{where}{self.key}={self.bad} (not set in good)"
            return f"{where}{self.key}={self.bad} (good: {self.good})"
        if self.kind in ("path-add", "path-move"):
            verb = "adds" if self.kind == "path-add" else "moves"
            place = f"right after {self.anchor}" if self.anchor else "first"
            return f"{where}{self.key} {verb} {self.item} {place}"
        if self.kind == "path-drop":
            return f"{where}{self.key} drops {self.item}"
        if self.kind == "arg":
            return f"{where}argument {self.key}: {self.bad} (good: {self.good})"
        return f"{where}{self.kind}: {self.bad} (good: {self.good})"


def plan_digest(plan: Plan) -> str:
    """A content digest of a plan (what a probe ran), for caches and reports."""
    text = json.dumps(plan.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _lcs(a: Sequence[str], b: Sequence[str]) -> list[str]:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = (table[i + 1][j + 1] + 1 if a[i] == b[j]
                           else max(table[i + 1][j], table[i][j + 1]))
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def _dirs(value: str) -> list[str]:
    return list(dict.fromkeys(d for d in value.split(":") if d))


def path_changes(step: str, var: str, good: str, bad: str) -> list[Change]:
    """The add/drop/move elements that turn library path ``good`` into ``bad``."""
    g, b = _dirs(good), _dirs(bad)
    if ":".join(g) != good or ":".join(b) != bad:  # empty or repeated folders: no elements
        return [Change(step, "env", var, good, bad)]
    skeleton = set(_lcs(g, b))
    changes = [Change(step, "path-drop", var, good, bad, item=d) for d in g if d not in b]
    anchor: str | None = None
    for d in b:
        if d in skeleton:
            anchor = d
            continue
        kind = "path-move" if d in g else "path-add"
        changes.append(Change(step, kind, var, good, bad, item=d, anchor=anchor))
    return changes


def apply_path(good: str, changes: Iterable[Change]) -> str:
    """Library path ``good`` with the given path-* changes of one variable applied."""
    chosen = list(changes)
    taken = {c.item for c in chosen if c.kind in ("path-drop", "path-move")}
    dirs = [d for d in _dirs(good) if d not in taken]
    placed: dict[str | None, int] = {}
    for c in chosen:  # in the bad path's order (path_changes makes them so)
        if c.kind == "path-drop":
            continue
        count = placed.get(c.anchor, 0)
        at = (dirs.index(c.anchor) + 1 if c.anchor in dirs else 0) + count
        dirs.insert(at, c.item)
        placed[c.anchor] = count + 1
    return ":".join(dirs)


def _step_changes(g: PlanStep, b: PlanStep) -> list[Change]:
    name = g.name
    changes: list[Change] = []
    for key in [*g.env, *(k for k in b.env if k not in g.env)]:
        gv, bv = g.env.get(key), b.env.get(key)
        if gv == bv:
            continue
        if key in PATH_VARS and gv is not None and bv is not None:
            changes += path_changes(name, key, gv, bv)
        else:
            changes.append(Change(name, "env", key, gv, bv))
    if g.binary != b.binary:
        changes.append(Change(name, "binary", "", g.binary, b.binary))
    if len(g.argv) == len(b.argv):
        changes += [Change(name, "arg", str(i), ga, ba)
                    for i, (ga, ba) in enumerate(zip(g.argv, b.argv, strict=True))
                    if ga != ba and i > 0]
        if g.argv[:1] != b.argv[:1]:
            changes.append(Change(name, "arg", "0", g.argv[0], b.argv[0]))
    else:
        changes.append(Change(name, "argv", "", " ".join(g.argv), " ".join(b.argv)))
    if g.cwd != b.cwd:
        changes.append(Change(name, "cwd", "", g.cwd, b.cwd))
    if (g.outputs, g.inputs) != (b.outputs, b.inputs):
        changes.append(Change(name, "outputs", "", ", ".join(o.path for o in g.outputs),
                              ", ".join(o.path for o in b.outputs)))
    return changes


def differences(good: Plan, bad: Plan) -> list[Change]:
    """Every change from ``good`` to ``bad`` (both plans of the same steps)."""
    g_names, b_names = [s.name for s in good.steps], [s.name for s in bad.steps]
    if g_names != b_names:
        raise UsageError(f"the plans have different steps ({', '.join(g_names)} vs "
                         f"{', '.join(b_names)}): bisect compares two plans of one recipe "
                         "shape")
    changes = [c for g, b in zip(good.steps, bad.steps, strict=True)
               for c in _step_changes(g, b)]
    if good.token_files != bad.token_files:
        changes.append(Change("", "tokens", "", "good prompt's ids", "bad prompt's ids"))
    return changes


def _apply_step(good: PlanStep, bad: PlanStep, changes: Sequence[Change]) -> PlanStep:
    env = dict(good.env)
    step = good
    paths: dict[str, list[Change]] = {}
    for c in changes:
        if c.kind == "env":
            if c.bad is None:
                env.pop(c.key, None)
            else:
                env[c.key] = c.bad
        elif c.kind.startswith("path-"):
            paths.setdefault(c.key, []).append(c)
        elif c.kind == "binary":
            step = replace(step, binary=bad.binary)
        elif c.kind == "arg":
            argv = list(step.argv)
            argv[int(c.key)] = bad.argv[int(c.key)]
            step = replace(step, argv=tuple(argv))
        elif c.kind == "argv":
            step = replace(step, argv=bad.argv)
        elif c.kind == "cwd":
            step = replace(step, cwd=bad.cwd)
        elif c.kind == "outputs":
            step = replace(step, outputs=bad.outputs, inputs=bad.inputs)
    for var, chosen in paths.items():
        env[var] = apply_path(good.env[var], chosen)
    return replace(step, env=env)


def apply(good: Plan, bad: Plan, changes: Iterable[Change]) -> Plan:
    """``good`` with ``changes`` (from :func:`differences`) taken from ``bad``."""
    chosen = list(changes)
    steps = tuple(_apply_step(g, b, [c for c in chosen if c.step == g.name])
                  for g, b in zip(good.steps, bad.steps, strict=True))
    tokens = bad.token_files if any(c.kind == "tokens" for c in chosen) else good.token_files
    return replace(good, steps=steps, token_files=tokens)


__all__ = ["Change", "apply", "apply_path", "differences", "path_changes", "plan_digest"]
