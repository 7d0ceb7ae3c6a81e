"""Telemetry samples of a run's steps: the ``samples`` table (schema version 5).

Long format, one row per (step, time, name); ``t`` is seconds since the step's first sample
on the phone's own clock; names are the canonical ones (``mem_available_kb``, ``rss_kb``,
``power_w``, ``temp_<zone>_c``, ``cpu<policy>_cur_khz``, ``gpu_busy_pct``, ...: see
:mod:`harness.run.telemetry`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.results.store import Store


@dataclass(frozen=True)
class SampleRow:
    step: str
    t: float
    name: str
    value: float


def record_samples(store: Store, run_id: str, step: str,
                   samples: Iterable[tuple[float, Mapping[str, float]]]) -> int:
    """Store ``(t, {name: value})`` samples of one step (a repeated (t, name) replaces the
    earlier value); return the number of rows written."""
    rows = [(run_id, step, float(t), name, float(value))
            for t, values in samples for name, value in values.items()]
    with store._tx() as tx:
        tx.executemany("INSERT OR REPLACE INTO samples (run_id, step, t, name, value) "
                       "VALUES (?, ?, ?, ?, ?)", rows)
    return len(rows)


def run_samples(store: Store, run_id: str, step: str | None = None,
                name: str | None = None) -> list[SampleRow]:
    """A run's samples in time order (optionally one step's, one name's)."""
    query = "SELECT step, t, name, value FROM samples WHERE run_id = ?"
    args: list[str] = [run_id]
    if step is not None:
        query += " AND step = ?"
        args.append(step)
    if name is not None:
        query += " AND name = ?"
        args.append(name)
    query += " ORDER BY step, t, name"
    return [SampleRow(r[0], r[1], r[2], r[3]) for r in store.conn.execute(query, args)]


def step_samples(store: Store, run_id: str, step: str,
                 names: Iterable[str] | None = None) -> dict[str, list[tuple[float, float]]]:
    """``{name: [(t, value), ...]}`` of one step, in time order (empty: no telemetry)."""
    wanted = list(names) if names is not None else None
    sql = "SELECT name, t, value FROM samples WHERE run_id = ? AND step = ?"
    args: list[object] = [run_id, step]
    if wanted is not None:
        if not wanted:
            return {}
        sql += f" AND name IN ({', '.join('?' for _ in wanted)})"
        args += wanted
    out: dict[str, list[tuple[float, float]]] = {}
    for name, t, value in store.conn.execute(sql + " ORDER BY t", args):
        out.setdefault(str(name), []).append((float(t), float(value)))
    return out


__all__ = ["SampleRow", "record_samples", "run_samples", "step_samples"]
