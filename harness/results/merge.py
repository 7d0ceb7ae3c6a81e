"""Merge result databases (shards of one bench, hosts of one farm) into one.

Every table is copied row by row with ``INSERT OR IGNORE`` on its primary key (runs and
benches by their ULID, steps by (run, index), metrics, outputs, samples and bench events by
theirs), so merging is idempotent: the same run twice is stored once, and merging a file
again changes nothing. The output is opened (created, migrated) as a :class:`Store`; an
input of an older schema is read with the columns both have (newer columns keep their
defaults); an input newer than this harness is refused. Parents go before children
(benches, runs, then the rest) so foreign keys hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.results.schema import LATEST_VERSION
from harness.results.store import Store, StoreError

TABLES = ("benches", "runs", "steps", "metrics", "outputs", "bench_events", "samples")


@dataclass
class MergeResult:
    output: Path
    added: dict[str, int] = field(default_factory=dict)  # table -> new rows
    inputs: list[Path] = field(default_factory=list)


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table})")]


def merge(inputs: Sequence[Path], output: Path) -> MergeResult:
    """Copy every row of each input into ``output`` (see the module docstring)."""
    result = MergeResult(output)
    for path in inputs:
        if not path.is_file():
            raise StoreError(f"{path}: no such results database")
    with Store.open(output) as store:
        conn = store.conn
        for path in inputs:
            if path.resolve() == output.resolve():
                continue
            result.inputs.append(path)
            conn.execute("ATTACH DATABASE ? AS src", (str(path),))
            try:
                version = int(conn.execute("PRAGMA src.user_version").fetchone()[0])
                if version > LATEST_VERSION:
                    raise StoreError(f"{path}: schema version {version} is newer than this "
                                     f"harness understands ({LATEST_VERSION})",
                                     hint="upgrade harness")
                _copy(conn, result)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{path}: cannot merge: {exc}") from exc
            finally:
                conn.execute("DETACH DATABASE src")
    return result


def _copy(conn: sqlite3.Connection, result: MergeResult) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in TABLES:
            theirs = set(_columns(conn, "src", table))
            if not theirs:
                continue
            cols = [c for c in _columns(conn, "main", table) if c in theirs]
            names = ", ".join(cols)  # column names read from both schemas
            before = conn.total_changes
            conn.execute(f"INSERT OR IGNORE INTO main.{table} ({names}) "  # noqa: S608
                         f"SELECT {names} FROM src.{table}")
            result.added[table] = result.added.get(table, 0) + conn.total_changes - before
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
