"""The bench matrix: every eligible phone x recipe, each rejection with its reason, shards.

A cell is one phone and one config entry (a recipe with its parameters). A phone is
rejected for an entry when the entry's selector does not name it, when it is excluded,
offline or its facts unreadable, or when it does not meet the plan's requirements (the
model's own RAM need by the seed, e.g. SDXL 1024: 16 GB, else the recipe's
``requirements``; SoCs): :meth:`harness.farm.inventory.Farm.select` decides, so ``bench``
and ``run`` reject the same phones for the same reasons. An entry whose plan has lint
errors it does not expect is rejected on every phone.

Shards (``--shard i/N``) split by phone, never by cell, so one phone is benched by one
host: a phone belongs to shard ``1 + (first 8 bytes of sha256(serial)) mod N``. That is
deterministic on every host and stable when phones are added or removed (a phone's shard
depends on its serial only; an index in a sorted list would move every phone after it).
The price: with few phones the shards are uneven.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.bench.config import BenchConfig, BenchRecipe
from harness.device.facts import Requirements
from harness.errors import HarnessError, UsageError
from harness.farm.inventory import Farm, FarmDevice, Selection
from harness.recipes.plan import Plan
from harness.run.runner import needed_ram_gb, refused_findings

SHARD_RE = re.compile(r"^(\d+)/(\d+)$")
ALL = "all"  # the default selector: every phone of the farm


@dataclass(frozen=True)
class Cell:
    serial: str
    entry: BenchRecipe
    plan: Plan

    @property
    def series(self) -> str:
        return self.entry.series


@dataclass(frozen=True)
class Rejection:
    serial: str | None  # None: the entry is rejected everywhere (its plan did not render)
    series: str
    reason: str


@dataclass
class Matrix:
    cells: list[Cell]
    rejected: list[Rejection]
    devices: dict[str, FarmDevice]  # the phones of the cells, by serial

    def phones(self) -> list[str]:
        return sorted({c.serial for c in self.cells})

    def cells_of(self, serial: str) -> list[Cell]:
        return [c for c in self.cells if c.serial == serial]


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4); a one-line error for anything else."""
    match = SHARD_RE.match(text.strip())
    if not match:
        raise UsageError(f"--shard {text!r}: give i/N, e.g. 1/2")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {text!r}: i must be in 1..N and N at least 1")
    return index, count


def shard_of(serial: str, count: int) -> int:
    """The 1-based shard of a phone among ``count`` (see the module docstring)."""
    digest = hashlib.sha256(serial.encode("utf-8", "surrogatepass")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count


def requirements_of(plan: Plan) -> Requirements:
    return Requirements(needed_ram_gb(plan), plan.requirements.socs)


def _select(farm: Farm, selector: str, requirements: Requirements,
            pool: Sequence[FarmDevice]) -> Selection:
    """``all``: every phone of the pool, each judged as ``--device SERIAL`` would be."""
    if selector != ALL:
        return farm.select(selector, requirements, pool)
    chosen: list[FarmDevice] = []
    rejected: list[tuple[FarmDevice, str]] = []
    for item in pool:
        one = farm.select(item.serial, requirements, [item])
        chosen.extend(one.chosen)
        rejected.extend(one.rejected)
    return Selection(selector, chosen, rejected)


def build_matrix(config: BenchConfig, plans: dict[str, Plan | str], farm: Farm,
                 pool: Sequence[FarmDevice], shard: tuple[int, int] | None = None) -> Matrix:
    """Cells and rejections for ``config``'s entries over the phones in ``pool``.

    ``plans`` maps each series to its rendered plan, or to why it could not be rendered.
    With ``shard`` only the phones of that shard appear (cells and rejections alike).
    """
    def mine(serial: str) -> bool:
        return shard is None or shard_of(serial, shard[1]) == shard[0]

    cells: list[Cell] = []
    rejected: list[Rejection] = []
    devices: dict[str, FarmDevice] = {}
    for entry in config.recipes:
        plan = plans[entry.series]
        if isinstance(plan, str):
            rejected.append(Rejection(None, entry.series, plan))
            continue
        lint = refused_findings(plan)
        if lint:
            why = "; ".join(f"{f.rule}: {f.message}" for f in lint)
            rejected.append(Rejection(None, entry.series, f"lint errors the recipe does not "
                                                          f"expect: {why}"))
            continue
        selector = config.selector_of(entry)
        try:
            selection = _select(farm, selector, requirements_of(plan), pool)
        except HarnessError as exc:
            rejected.append(Rejection(None, entry.series, f"--device {selector}: {exc}"))
            continue
        named = {d.serial for d in selection.chosen} | {d.serial for d, _ in selection.rejected}
        for item in pool:
            if item.serial not in named and mine(item.serial):
                rejected.append(Rejection(item.serial, entry.series,
                                          f"not selected by {selector}"))
        for item, why in selection.rejected:
            if mine(item.serial):
                rejected.append(Rejection(item.serial, entry.series, why))
        for item in selection.chosen:
            if mine(item.serial):
                cells.append(Cell(item.serial, entry, plan))
                devices[item.serial] = item
    return Matrix(cells, rejected, devices)
