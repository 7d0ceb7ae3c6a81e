"""``harness repro sweep``: every cell of a matrix run through the ordinary run path.

All cells are rendered (and so checked: unknown variables, bad parameter values, unknown
steps) before the first one runs; a bad input leaves nothing behind. The phone is chosen
once and every cell runs there, ``repeat`` times, each run stored as any ``harness run``.
The sweep folder ``<logs>/sweep-<time>-<recipe>/`` gets the contact sheet and
``sweep.json``; the runs keep their own folders beside it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, UsageError
from harness.home import safe_name
from harness.recipes.plan import Plan
from harness.repro.matrix import Cell, ResolvedAxis, expand, parse_axes, resolve_axis
from harness.repro.sheet import Tile, write_sheet
from harness.repro.verdict import CellSummary, RunVerdict, classify, lost, summarize
from harness.run.runner import RunEvents, RunRequest, build_plan, pick_device, run_plan

SWEEP_FORMAT = 1
MAX_REPEAT = 50


@dataclass
class SweepEvents:
    run_started: Callable[[Cell, int], None] = lambda cell, repeat: None
    run_done: Callable[[Cell, RunVerdict], None] = lambda cell, verdict: None
    run: RunEvents = field(default_factory=RunEvents)


@dataclass
class CellResult:
    cell: Cell
    verdicts: list[RunVerdict]
    summary: CellSummary

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.cell.index, "settings": dict(self.cell.settings),
                "set": list(self.cell.set_pairs), "verdict": self.summary.kind,
                "label": self.summary.label(), "counts": self.summary.counts,
                "seconds_median": self.summary.seconds_median,
                "runs": [v.to_dict() for v in self.verdicts]}


@dataclass
class SweepResult:
    recipe: str
    serial: str
    axes: list[ResolvedAxis]
    cells: list[CellResult]
    folder: Path
    sheet: Path
    repeat: int

    def to_dict(self) -> dict[str, Any]:
        return {"format": SWEEP_FORMAT, "recipe": self.recipe, "serial": self.serial,
                "repeat": self.repeat,
                "axes": [{"var": a.var, "values": list(a.values), "kind": a.kind,
                          "steps": list(a.steps)} for a in self.axes],
                "cells": [c.to_dict() for c in self.cells], "folder": str(self.folder),
                "sheet": str(self.sheet)}


def plan_sweep(base: RunRequest, sweeps: tuple[str, ...]) -> tuple[list[ResolvedAxis],
                                                                  list[tuple[Cell, Plan]]]:
    """The resolved axes and every cell's rendered plan (all checked before any runs)."""
    axes_in = parse_axes(sweeps)
    plan = build_plan(base)
    axes = [resolve_axis(a, plan) for a in axes_in]
    cells = expand(axes)
    plans = []
    for cell in cells:
        try:
            plans.append((cell, build_plan(replace(base, set_pairs=(*base.set_pairs,
                                                                    *cell.set_pairs)))))
        except UsageError as exc:
            raise UsageError(f"sweep cell {cell.label}: {exc}", hint=exc.hint) from exc
    return axes, plans


def run_once(plan: Plan, request: RunRequest, events: RunEvents) -> RunVerdict:
    """One run of ``plan``; a phone that cannot be reached is a ``lost`` verdict."""
    try:
        return classify(run_plan(plan, request, events))
    except UsageError:
        raise
    except HarnessError as exc:
        return lost(str(exc))


def sweep_folder(logs_dir: Path, recipe: str) -> Path:
    base = logs_dir / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(recipe)}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def run_sweep(base: RunRequest, sweeps: tuple[str, ...], repeat: int = 1,
              events: SweepEvents | None = None) -> SweepResult:
    if not 1 <= repeat <= MAX_REPEAT:
        raise UsageError(f"--repeat must be 1..{MAX_REPEAT}")
    events = events or SweepEvents()
    axes, plans = plan_sweep(base, sweeps)
    device = pick_device(base, plans[0][1])
    request = replace(base, selector=device.serial, force=True)
    results = []
    for cell, plan in plans:
        verdicts = []
        for k in range(repeat):
            events.run_started(cell, k)
            verdict = run_once(plan, request, events.run)
            verdicts.append(verdict)
            events.run_done(cell, verdict)
        results.append(CellResult(cell, verdicts, summarize(verdicts)))
    folder = sweep_folder(base.logs_dir, plans[0][1].recipe)
    folder.mkdir(parents=True)
    sheet = write_sheet(
        [Tile(tuple(f"{v}={x}" for v, x in r.cell.settings), r.summary.label(),
              r.summary.kind, _image(r)) for r in results],
        folder / "sheet.png", f"{plans[0][1].recipe} on {device.serial}")
    result = SweepResult(plans[0][1].recipe, device.serial, axes, results, folder, sheet,
                         repeat)
    write_json(folder / "sweep.json", result.to_dict())
    return result


def _image(result: CellResult) -> Path | None:
    for verdict in result.verdicts:
        if verdict.image:
            return Path(verdict.image)
    return None


def write_json(dest: Path, data: Any) -> None:
    """``data`` as JSON at ``dest``, atomically (a temporary name renamed into place)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["CellResult", "SweepEvents", "SweepResult", "plan_sweep", "run_once", "run_sweep",
           "write_json"]
