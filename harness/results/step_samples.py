"""Reading a step's telemetry samples (migration 5's ``samples`` table) back, by name."""

from __future__ import annotations

from collections.abc import Iterable

from harness.results.store import Store


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
