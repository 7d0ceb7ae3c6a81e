"""Read-only queries the reports need: benches, their events, their runs with the bench
columns (validity, repeat, warm-up, provenance, conditions), and telemetry samples.

Pure reads over a :class:`~harness.results.store.Store`; nothing here writes. Kept apart
from ``store.py`` so that the bench writers (``harness bench``) and these readers grow
without touching one file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UsageError
from harness.results.store import RunRecord, Store, _run

_BENCH_COLUMNS = ("id, started_at, ended_at, status, config_json, shard, baseline, host, "
                  "harness_version, summary_json")


@dataclass(frozen=True)
class BenchRecord:
    """One ``harness bench`` (a night of a nightly)."""

    id: str
    started_at: float
    ended_at: float | None
    status: str
    config: dict[str, Any]
    shard: str | None
    baseline: str | None
    host: str | None
    harness_version: str | None
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class BenchEvent:
    """Something that happened to a bench or one of its phones (lost, rejected, ...)."""

    bench_id: str
    seq: int
    at: float
    serial: str | None
    recipe: str | None
    kind: str
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class BenchRun:
    """A run with the columns a bench adds, and its perf figures by ``step/name``."""

    run: RunRecord
    validity: str | None
    validity_reason: str | None
    repeat_idx: int | None
    warmup: bool
    provenance: dict[str, Any] | None
    conditions: dict[str, Any] | None
    metrics: dict[str, float] = field(default_factory=dict)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _bench(row: Any) -> BenchRecord:
    return BenchRecord(row["id"], row["started_at"], row["ended_at"], row["status"],
                       _loads(row["config_json"]) or {}, row["shard"], row["baseline"],
                       row["host"], row["harness_version"], _loads(row["summary_json"]))


def list_benches(store: Store, limit: int | None = None) -> list[BenchRecord]:
    """Benches, newest first."""
    rows = store.conn.execute(f"SELECT {_BENCH_COLUMNS} FROM benches "  # noqa: S608
                              "ORDER BY started_at DESC, id DESC LIMIT ?",
                              (-1 if limit is None else int(limit),))
    return [_bench(r) for r in rows]


def get_bench(store: Store, id_or_prefix: str) -> BenchRecord:
    """The bench whose id starts with ``id_or_prefix`` (case-insensitive, unique)."""
    text = id_or_prefix.strip().upper()
    if not text:
        raise UsageError("empty bench id")
    rows = store.conn.execute(f"SELECT {_BENCH_COLUMNS} FROM benches "  # noqa: S608
                              "WHERE id >= ? AND id < ? ORDER BY id LIMIT 6",
                              (text, text + "\U0010ffff")).fetchall()
    if not rows:
        raise UsageError(f"no bench {id_or_prefix!r} in {store.path}",
                         hint="`harness report --last` takes the newest")
    if len(rows) > 1:
        raise UsageError(f"bench id {id_or_prefix!r} is ambiguous: "
                         + ", ".join(r["id"] for r in rows[:5]))
    return _bench(rows[0])


def last_bench(store: Store) -> BenchRecord | None:
    """The newest bench, or None when there is none."""
    found = list_benches(store, limit=1)
    return found[0] if found else None


def bench_events(store: Store, bench_id: str) -> list[BenchEvent]:
    rows = store.conn.execute("SELECT bench_id, seq, at, serial, recipe, kind, detail_json "
                              "FROM bench_events WHERE bench_id = ? ORDER BY seq", (bench_id,))
    return [BenchEvent(r["bench_id"], r["seq"], r["at"], r["serial"], r["recipe"], r["kind"],
                       _loads(r["detail_json"])) for r in rows]


_SELECT_BENCH_RUNS = (
    "SELECT id, recipe, status, started_at, ended_at, serial, host, harness_version, verdict, "
    "diagnosis, run_dir, bench_id, params_json, device_json, temps_before_json, "
    "temps_after_json, holder_pid, holder_start, validity, validity_reason, repeat_idx, "
    "warmup, provenance_json, conditions_json FROM runs"
)


def _bench_runs(store: Store, where: str, args: tuple[Any, ...]) -> list[BenchRun]:
    rows = store.conn.execute(f"{_SELECT_BENCH_RUNS} WHERE {where} "
                              "ORDER BY started_at, id", args).fetchall()
    metrics: dict[str, dict[str, float]] = defaultdict(dict)
    ids = [r["id"] for r in rows]
    for r in store.conn.execute(
            "SELECT run_id, step, name, value FROM metrics WHERE run_id IN "
            "(SELECT value FROM json_each(?)) ORDER BY rowid", (json.dumps(ids),)):
        metrics[r["run_id"]][f"{r['step']}/{r['name']}"] = r["value"]
    return [BenchRun(_run(r), r["validity"], r["validity_reason"], r["repeat_idx"],
                     bool(r["warmup"]), _loads(r["provenance_json"]),
                     _loads(r["conditions_json"]), metrics.get(r["id"], {})) for r in rows]


def bench_runs(store: Store, bench_id: str) -> list[BenchRun]:
    """Every run of one bench, oldest first, with its metrics."""
    return _bench_runs(store, "bench_id = ?", (bench_id,))


def bench_run(store: Store, run_id: str) -> BenchRun:
    """One run (full id or unique prefix) with the bench columns."""
    return _bench_runs(store, "id = ?", (store.resolve_id(run_id),))[0]


Series = list[tuple[float, float]]  # (t seconds since the step started, value)


def samples(store: Store, run_id: str) -> dict[str, dict[str, Series]]:
    """A run's telemetry: step -> sample name -> [(t, value)], in time order."""
    found: dict[str, dict[str, Series]] = defaultdict(lambda: defaultdict(list))
    for r in store.conn.execute("SELECT step, t, name, value FROM samples WHERE run_id = ? "
                                "ORDER BY step, t", (run_id,)):
        found[r["step"]][r["name"]].append((r["t"], r["value"]))
    return {step: dict(names) for step, names in found.items()}
