"""Benches in the results store: the bench row, its events, and each bench run's judgement.

Writers and queries over a :class:`harness.results.store.Store` (schema: migration 4). Each
call is its own committed transaction, like the store's own writers.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness import __version__
from harness.errors import UsageError
from harness.holder import Holder
from harness.results.schema import BENCH_STATUSES
from harness.results.store import Store, new_run_id

ENDED = ("ok", "regressed", "failed")  # benches whose runs can be a baseline


@dataclass(frozen=True)
class BenchRecord:
    id: str
    started_at: float
    ended_at: float | None
    status: str
    config_json: str
    shard: str | None
    baseline: str | None
    host: str | None
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class BenchRun:
    """One run of a bench with what judging it needs."""

    id: str
    serial: str | None
    recipe: str
    series: str | None  # the bench config entry (conditions_json's "series")
    status: str
    validity: str | None
    repeat_idx: int | None
    warmup: bool
    started_at: float
    bench_id: str | None
    metrics: dict[tuple[str, str], float]  # (step, name) -> value
    model: str
    provenance: dict[str, Any] | None


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _bench(row: Any) -> BenchRecord:
    return BenchRecord(row["id"], row["started_at"], row["ended_at"], row["status"],
                       row["config_json"], row["shard"], row["baseline"], row["host"],
                       json.loads(row["summary_json"]) if row["summary_json"] else None)


def create_bench(store: Store, config_json: str, shard: str | None,
                 baseline: str | None) -> str:
    bench_id = new_run_id()
    me = Holder.me()
    with store._tx() as tx:
        tx.execute("INSERT INTO benches (id, started_at, status, config_json, shard, baseline, "
                   "host, harness_version, holder_pid, holder_start) VALUES "
                   "(?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                   (bench_id, time.time(), config_json, shard, baseline,
                    socket.gethostname(), __version__, me.pid, me.start))
    return bench_id


def reopen_bench(store: Store, bench_id: str) -> BenchRecord:
    """Take over a bench for ``--resume``; refused while another live process runs it."""
    record = get_bench(store, bench_id)
    row = store.conn.execute("SELECT host, holder_pid, holder_start FROM benches WHERE id = ?",
                             (record.id,)).fetchone()
    if record.status == "running" and row["holder_pid"] is not None:
        holder = Holder(row["host"] or "", row["holder_pid"], row["holder_start"] or "")
        if not holder.local or not holder.dead_here():
            raise UsageError(f"bench {record.id} is still running ({holder.describe()})",
                             hint="stop it first, or wait for it to end")
    me = Holder.me()
    with store._tx() as tx:
        tx.execute("UPDATE benches SET status = 'running', ended_at = NULL, holder_pid = ?, "
                   "holder_start = ?, host = ? WHERE id = ?",
                   (me.pid, me.start, socket.gethostname(), record.id))
    return record


def finish_bench(store: Store, bench_id: str, status: str,
                 summary: Mapping[str, Any] | None) -> None:
    if status not in BENCH_STATUSES:
        raise UsageError(f"bench status must be one of {', '.join(BENCH_STATUSES)}")
    with store._tx() as tx:
        tx.execute("UPDATE benches SET status = ?, ended_at = ?, summary_json = ? "
                   "WHERE id = ?", (status, time.time(), _dumps(summary), bench_id))


def add_event(store: Store, bench_id: str, kind: str, serial: str | None = None,
              recipe: str | None = None, detail: Mapping[str, Any] | None = None) -> None:
    with store._tx() as tx:
        seq = tx.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM bench_events WHERE "
                         "bench_id = ?", (bench_id,)).fetchone()[0]
        tx.execute("INSERT INTO bench_events (bench_id, seq, at, serial, recipe, kind, "
                   "detail_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (bench_id, seq, time.time(), serial, recipe, kind, _dumps(detail)))


def events(store: Store, bench_id: str) -> list[dict[str, Any]]:
    rows = store.conn.execute("SELECT seq, at, serial, recipe, kind, detail_json FROM "
                              "bench_events WHERE bench_id = ? ORDER BY seq", (bench_id,))
    return [{"seq": r["seq"], "at": r["at"], "serial": r["serial"], "recipe": r["recipe"],
             "kind": r["kind"], "detail": json.loads(r["detail_json"])
             if r["detail_json"] else None} for r in rows]


def annotate_run(store: Store, run_id: str, *, validity: str, reason: str,
                 repeat_idx: int, warmup: bool, provenance: Mapping[str, Any] | None,
                 conditions: Mapping[str, Any]) -> None:
    with store._tx() as tx:
        tx.execute("UPDATE runs SET validity = ?, validity_reason = ?, repeat_idx = ?, "
                   "warmup = ?, provenance_json = ?, conditions_json = ? WHERE id = ?",
                   (validity, reason, repeat_idx, int(warmup), _dumps(provenance),
                    _dumps(conditions), run_id))


def set_validity(store: Store, run_id: str, validity: str, reason: str) -> None:
    with store._tx() as tx:
        tx.execute("UPDATE runs SET validity = ?, validity_reason = ? WHERE id = ?",
                   (validity, reason, run_id))


def get_bench(store: Store, ref: str) -> BenchRecord:
    """A bench by id (a unique prefix is enough) or ``last`` (the newest ended one)."""
    if ref == "last":
        row = store.conn.execute("SELECT * FROM benches WHERE status IN (SELECT value FROM "
                                 "json_each(?)) ORDER BY started_at DESC LIMIT 1",
                                 (json.dumps(ENDED),)).fetchone()
        if row is None:
            raise UsageError(f"no finished bench in {store.path} to compare with")
        return _bench(row)
    text = ref.strip().upper()
    rows = store.conn.execute("SELECT * FROM benches WHERE id >= ? AND id < ? ORDER BY id "
                              "LIMIT 2", (text, text + "\U0010ffff")).fetchall()
    if not text or not rows:
        raise UsageError(f"no bench {ref!r} in {store.path}")
    if len(rows) > 1:
        raise UsageError(f"bench id {ref!r} is ambiguous")
    return _bench(rows[0])


def previous_benches(store: Store, before: float) -> list[str]:
    """Ended benches started before ``before``, newest first (candidates for ``last``)."""
    return [r[0] for r in store.conn.execute(
        "SELECT id FROM benches WHERE started_at < ? AND status IN (SELECT value FROM "
        "json_each(?)) ORDER BY started_at DESC", (before, json.dumps(ENDED)))]


def bench_runs(store: Store, bench_id: str) -> list[BenchRun]:
    rows = store.conn.execute(
        "SELECT id, serial, recipe, status, validity, repeat_idx, warmup, started_at, "
        "bench_id, conditions_json, device_json, provenance_json FROM runs WHERE bench_id = ? "
        "ORDER BY started_at, id", (bench_id,)).fetchall()
    metrics: dict[str, dict[tuple[str, str], float]] = {}
    for m in store.conn.execute("SELECT m.run_id, m.step, m.name, m.value FROM metrics m JOIN "
                                "runs r ON r.id = m.run_id WHERE r.bench_id = ?", (bench_id,)):
        metrics.setdefault(m[0], {})[(m[1], m[2])] = m[3]
    found = []
    for r in rows:
        conditions = json.loads(r["conditions_json"]) if r["conditions_json"] else {}
        device = json.loads(r["device_json"]) if r["device_json"] else {}
        found.append(BenchRun(
            r["id"], r["serial"], r["recipe"], conditions.get("series"), r["status"],
            r["validity"], r["repeat_idx"], bool(r["warmup"]), r["started_at"], r["bench_id"],
            metrics.get(r["id"], {}), str(device.get("model") or ""),
            json.loads(r["provenance_json"]) if r["provenance_json"] else None))
    return found


def interrupt_running(store: Store, bench_id: str, why: str) -> list[str]:
    """Runs of this bench and this process still ``running`` (a worker cut short between
    beginning and finishing a run) become ``interrupted``."""
    me = Holder.me()
    ids = [r[0] for r in store.conn.execute(
        "SELECT id FROM runs WHERE bench_id = ? AND status = 'running' AND holder_pid = ? "
        "AND host = ?", (bench_id, me.pid, socket.gethostname()))]
    for run_id in ids:
        store.finish_run(run_id, "interrupted", diagnosis=why)
    return ids
