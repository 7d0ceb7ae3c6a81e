"""Read-only queries for the bench history (:mod:`harness.bench.history`).

A *bench* (a row of ``benches``) is one night of a nightly. The history of a series is read
in two queries: :func:`bench_window` picks the benches (the last ``max_nights`` up to and
including a given one), :func:`bench_runs` loads every run of those benches with its
metrics, outputs, validity and provenance in one pass (three statements, not one per run).
:func:`first_valid_output` finds a series' reference image: its first valid output ever,
even before the window.

Nothing here writes; the bench command writes benches and runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UsageError
from harness.results.store import Store


@dataclass(frozen=True)
class BenchRow:
    """One bench (a night)."""

    id: str
    started_at: float
    status: str


@dataclass(frozen=True)
class OutputRef:
    """An output a run pulled and converted: ``png_path`` is on this host (may be gone)."""

    step: str
    name: str
    kind: str
    png_path: str | None


@dataclass(frozen=True)
class BenchRun:
    """A run of a bench, with what the history needs of it."""

    id: str
    bench_id: str
    started_at: float
    recipe: str
    serial: str
    model: str
    status: str
    validity: str | None  # NULL in the database: the run was never judged
    validity_reason: str | None
    warmup: bool
    params: dict[str, Any]
    provenance: dict[str, Any] | None
    metrics: dict[tuple[str, str], float] = field(default_factory=dict)  # (step, name)
    outputs: tuple[OutputRef, ...] = ()


def bench_window(store: Store, bench_id: str | None = None,
                 max_nights: int = 60) -> list[BenchRow]:
    """The last ``max_nights`` benches up to and including ``bench_id`` (default: the
    latest), oldest first. Raises UsageError for an unknown bench id."""
    conn = store.conn
    if bench_id is None:
        row = conn.execute("SELECT id, started_at FROM benches "
                           "ORDER BY started_at DESC, id DESC LIMIT 1").fetchone()
        if row is None:
            return []
    else:
        row = conn.execute("SELECT id, started_at FROM benches WHERE id = ?",
                           (bench_id,)).fetchone()
        if row is None:
            raise UsageError(f"no bench {bench_id!r} in {store.path}",
                             hint="`harness runs list` shows each run's bench")
    rows = conn.execute(
        "SELECT id, started_at, status FROM benches WHERE started_at < :t "
        "OR (started_at = :t AND id <= :id) ORDER BY started_at DESC, id DESC LIMIT :n",
        {"t": row["started_at"], "id": row["id"], "n": int(max_nights)}).fetchall()
    return [BenchRow(r["id"], r["started_at"], r["status"]) for r in reversed(rows)]


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def bench_runs(store: Store, bench_ids: Sequence[str]) -> list[BenchRun]:
    """Every run of the given benches, oldest first, with metrics and outputs."""
    conn = store.conn
    ids = json.dumps(list(bench_ids))
    rows = conn.execute(
        "SELECT id, bench_id, started_at, recipe, serial, device_json, status, validity, "
        "validity_reason, warmup, params_json, provenance_json FROM runs "
        "WHERE bench_id IN (SELECT value FROM json_each(?)) ORDER BY started_at, id",
        (ids,)).fetchall()
    metrics: dict[str, dict[tuple[str, str], float]] = {}
    for r in conn.execute(
            "SELECT m.run_id, m.step, m.name, m.value FROM metrics m JOIN runs r "
            "ON r.id = m.run_id WHERE r.bench_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY m.rowid", (ids,)):
        metrics.setdefault(r[0], {})[(r[1], r[2])] = float(r[3])
    outputs: dict[str, list[OutputRef]] = {}
    for r in conn.execute(
            "SELECT o.run_id, o.step, o.name, o.kind, o.png_path FROM outputs o JOIN runs r "
            "ON r.id = o.run_id WHERE r.bench_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY o.rowid", (ids,)):
        outputs.setdefault(r[0], []).append(OutputRef(r[1], r[2], r[3], r[4]))
    runs = []
    for r in rows:
        device = _loads(r["device_json"]) or {}
        runs.append(BenchRun(
            id=r["id"], bench_id=r["bench_id"], started_at=r["started_at"],
            recipe=r["recipe"], serial=r["serial"] or "", model=str(device.get("model", "")),
            status=r["status"], validity=r["validity"], validity_reason=r["validity_reason"],
            warmup=bool(r["warmup"]), params=_loads(r["params_json"]) or {},
            provenance=_loads(r["provenance_json"]), metrics=metrics.get(r["id"], {}),
            outputs=tuple(outputs.get(r["id"], ()))))
    return runs


def first_valid_output(store: Store, serial: str, recipe: str, params: dict[str, Any],
                       step: str, name: str, before: float | None = None) -> tuple[str, str] | None:
    """``(run id, png path)`` of the first valid, measured bench run of (serial, recipe,
    params) that has output ``step``/``name`` converted, started before ``before`` (default:
    any time); None when there is none."""
    row = store.conn.execute(
        "SELECT r.id, o.png_path FROM runs r JOIN outputs o ON o.run_id = r.id "
        "WHERE r.serial = ? AND r.recipe = ? AND r.params_json = ? AND r.validity = 'valid' "
        "AND r.warmup = 0 AND r.bench_id IS NOT NULL AND o.step = ? AND o.name = ? "
        "AND o.png_path IS NOT NULL AND (? IS NULL OR r.started_at < ?) "
        "ORDER BY r.started_at, r.id LIMIT 1",
        (serial, recipe, json.dumps(params, sort_keys=True, default=str), step, name,
         before, before)).fetchone()
    return None if row is None else (row[0], row[1])
