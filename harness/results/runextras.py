"""Per-run extras that repro reads and writes: provenance (asset digests) and telemetry samples.

Queries over the columns and tables of migrations 4 and 5 (``runs.provenance_json``,
``samples``), kept out of :mod:`harness.results.store` so that each concern stays small.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from harness.results.store import Store


@dataclass(frozen=True)
class Sample:
    step: str
    t: float  # seconds since the step started, the phone's clock
    name: str  # canonical sample name: rss_kb, hwm_kb, mem_available_kb, power_w, ...
    value: float


def get_provenance(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's provenance (``{"asset_sets": {set: {device path: sha256}}, ...}``)."""
    row = store.conn.execute("SELECT provenance_json FROM runs WHERE id = ?",
                             (run_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    data = json.loads(row[0])
    return data if isinstance(data, dict) else None


def set_provenance(store: Store, run_id: str, provenance: dict[str, Any]) -> None:
    """Record (replace) the run's provenance."""
    # The store's connection is in autocommit mode: one statement is its own transaction.
    store.conn.execute("UPDATE runs SET provenance_json = ? WHERE id = ?",
                       (json.dumps(provenance, sort_keys=True), run_id))


def samples(store: Store, run_id: str) -> list[Sample]:
    """The run's telemetry samples, by step and time (none when the table is empty)."""
    try:
        rows = store.conn.execute("SELECT step, t, name, value FROM samples WHERE run_id = ? "
                                  "ORDER BY step, t, name", (run_id,)).fetchall()
    except sqlite3.OperationalError:  # a database from before migration 5
        return []
    return [Sample(r[0], float(r[1]), r[2], float(r[3])) for r in rows]


__all__ = ["Sample", "get_provenance", "samples", "set_provenance"]
