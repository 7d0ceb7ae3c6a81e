"""The results store: every run, its steps, perf figures and outputs, in SQLite.

One file, by default ``$HARNESS_HOME/results.sqlite``, in WAL mode so that readers never block
the writer and several harness processes (one per phone) can write at once. Each call that
records something is its own transaction, committed before it returns: a crash loses nothing
already recorded, and a run that never finished stays visible with status ``running`` (or
``interrupted`` when the runner caught the interruption). Each running row names its holder
(host, PID, PID start identity: :class:`harness.holder.Holder`); opening the store or
listing runs turns the running rows of this host whose holder died (``kill -9``, a crash)
into ``abandoned``.

The schema lives in :mod:`harness.results.schema` (versioned migrations). Runs keep the whole
rendered plan as JSON, so bench, reports and bundles can reuse or replay exactly what ran.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import HarnessError, UsageError
from harness.holder import Holder
from harness.home import harness_home
from harness.recipes.plan import Plan
from harness.results.schema import LATEST_VERSION, RUN_STATUSES, migrate, schema_version

DB_NAME = "results.sqlite"
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction
FINAL_STATUSES = ("ok", "failed", "interrupted")
_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_ULID_TIME_CHARS = 10
_ULID_RANDOM_BYTES = 10


class StoreError(HarnessError):
    """The results database cannot be opened or is newer than this harness."""


def default_db_path() -> Path:
    return harness_home() / DB_NAME


@contextmanager
def _open_close_lock(db: Path) -> Iterator[None]:
    """Serialise opening and closing the database across processes on this host.

    SQLite's busy timeout covers transactions but not every step of opening a WAL database:
    switching the journal mode of a new file, or opening while another process's last close
    is checkpointing and deleting the WAL, can fail at once with "database is locked". An
    flock on ``<db>.lock`` (released when the holder dies) closes that window; transactions
    still run concurrently and rely on the busy timeout.
    """
    fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def new_run_id(now_s: float | None = None) -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, 26 characters, sortable by time."""
    millis = int((time.time() if now_s is None else now_s) * 1000)
    value = (millis << (8 * _ULID_RANDOM_BYTES)) | int.from_bytes(
        os.urandom(_ULID_RANDOM_BYTES), "big")
    chars = []
    for _ in range(_ULID_TIME_CHARS + 16):
        chars.append(_ULID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


@dataclass(frozen=True)
class StepRecord:
    """One process of a run, as it ended."""

    index: int
    name: str
    command: str
    exit_code: int | None  # None: no exit status (killed, timed out, connection lost)
    seconds: float | None = None
    signal: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    diagnosis: str | None = None
    perf_issues: tuple[str, ...] = ()  # malformed [Perf] lines, as "line N: reason: text"


@dataclass(frozen=True)
class MetricRecord:
    step: str
    name: str
    value: float


@dataclass(frozen=True)
class OutputRecord:
    step: str
    name: str
    device_path: str
    kind: str
    shape: tuple[int, ...]
    local_path: str | None = None
    nan_count: int | None = None
    inf_count: int | None = None
    png_path: str | None = None


@dataclass(frozen=True)
class RunRecord:
    id: str
    recipe: str
    status: str
    started_at: float
    ended_at: float | None
    serial: str | None
    host: str | None
    harness_version: str | None
    verdict: str | None  # one verdict per line (hot-start, colour blocks, missing metrics...)
    diagnosis: str | None
    run_dir: str | None
    bench_id: str | None
    params: dict[str, Any]
    device: dict[str, Any] | None
    temps_before: dict[str, Any] | None
    temps_after: dict[str, Any] | None
    holder_pid: int | None = None
    holder_start: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True)
class RunDetail:
    run: RunRecord
    plan: dict[str, Any]  # Plan.to_dict(); Plan.from_dict() rebuilds it
    steps: list[StepRecord]
    metrics: list[MetricRecord]
    outputs: list[OutputRecord]

    def metric(self, name: str, step: str | None = None) -> float | None:
        for m in self.metrics:
            if m.name == name and (step is None or m.step == step):
                return m.value
        return None


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


_SELECT_RUNS = (
    "SELECT id, recipe, status, started_at, ended_at, serial, host, harness_version, verdict, "
    "diagnosis, run_dir, bench_id, params_json, device_json, temps_before_json, "
    "temps_after_json, plan_json, holder_pid, holder_start FROM runs"
)
_LIST_RUNS = (
    _SELECT_RUNS + " WHERE (:recipe IS NULL OR recipe = :recipe)"
    " AND (:serial IS NULL OR serial = :serial) AND (:status IS NULL OR status = :status)"
    " AND (:bench_id IS NULL OR bench_id = :bench_id)"
    " ORDER BY started_at DESC, id DESC LIMIT :limit"
)
_METRIC_VALUES = (
    "SELECT r.id, r.started_at, m.value FROM metrics m JOIN runs r ON r.id = m.run_id"
    " WHERE r.recipe = :recipe AND m.name = :name"
    " AND r.status IN (SELECT value FROM json_each(:statuses))"
    " AND (:serial IS NULL OR r.serial = :serial)"
    " ORDER BY r.started_at DESC LIMIT :limit"
)


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"], recipe=row["recipe"], status=row["status"],
        started_at=row["started_at"], ended_at=row["ended_at"], serial=row["serial"],
        host=row["host"], harness_version=row["harness_version"], verdict=row["verdict"],
        diagnosis=row["diagnosis"], run_dir=row["run_dir"], bench_id=row["bench_id"],
        params=_loads(row["params_json"]) or {}, device=_loads(row["device_json"]),
        temps_before=_loads(row["temps_before_json"]),
        temps_after=_loads(row["temps_after_json"]),
        holder_pid=row["holder_pid"], holder_start=row["holder_start"],
    )


class Store:
    """A connection to the results database. Use :meth:`open`; close it (or use ``with``)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path | None = None) -> Store:
        """Open (creating and migrating as needed) the database at ``path``."""
        path = path or default_db_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _open_close_lock(path):
                return cls._open_locked(path)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open the results database: {exc}") from exc

    @classmethod
    def _open_locked(cls, path: Path) -> Store:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            version = schema_version(conn)
            if version > LATEST_VERSION:
                conn.close()
                raise StoreError(f"{path}: schema version {version} is newer than this "
                                 f"harness understands ({LATEST_VERSION})",
                                 hint="upgrade harness")
            if version < LATEST_VERSION:
                migrate(conn)
            store = cls(conn, path)
            store.mark_abandoned()
        except (sqlite3.DatabaseError, OSError) as exc:
            if conn is not None:
                conn.close()
            raise StoreError(f"{path}: cannot open the results database: {exc}") from exc
        return store

    def close(self) -> None:
        # The last connection to close checkpoints and removes the WAL file; doing that under
        # the same lock as opening keeps it from racing another process's journal-mode switch.
        try:
            with _open_close_lock(self.path):
                self.conn.close()
        except OSError:
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return schema_version(self.conn)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- writing ---------------------------------------------------------------------------

    def begin_run(self, plan: Plan, *, serial: str | None = None,
                  device: Mapping[str, Any] | None = None, run_dir: str | Path | None = None,
                  bench_id: str | None = None, temps_before: Mapping[str, Any] | None = None,
                  host: str | None = None, started_at: float | None = None,
                  run_id: str | None = None) -> str:
        """Record a new run with status ``running`` (committed at once); return its id."""
        run_id = run_id or new_run_id(started_at)
        me = Holder.me()
        with self._tx() as tx:
            tx.execute(
                "INSERT INTO runs (id, recipe, plan_json, params_json, serial, device_json, "
                "host, harness_version, started_at, status, temps_before_json, run_dir, "
                "bench_id, holder_pid, holder_start) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                (run_id, plan.recipe, json.dumps(plan.to_dict()), _dumps(plan.params), serial,
                 _dumps(dict(device) if device is not None else None),
                 host or socket.gethostname(), __version__,
                 time.time() if started_at is None else started_at,
                 _dumps(dict(temps_before) if temps_before is not None else None),
                 None if run_dir is None else str(run_dir), bench_id, me.pid, me.start))
        return run_id

    def record_step(self, run_id: str, step: StepRecord,
                    metrics: Mapping[str, float] | None = None) -> None:
        """Record a finished step and its perf figures (one transaction)."""
        with self._tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO steps (run_id, idx, name, command, exit_code, signal, "
                "seconds, stdout_tail, stderr_tail, diagnosis, perf_issues_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, step.index, step.name, step.command, step.exit_code, step.signal,
                 step.seconds, step.stdout_tail, step.stderr_tail, step.diagnosis,
                 _dumps(list(step.perf_issues)) if step.perf_issues else None))
            self._insert_metrics(tx, run_id, step.name, metrics or {})

    def record_metrics(self, run_id: str, step: str, metrics: Mapping[str, float]) -> None:
        """Record perf figures of a step (a later value of the same name replaces it)."""
        with self._tx() as tx:
            self._insert_metrics(tx, run_id, step, metrics)

    @staticmethod
    def _insert_metrics(tx: sqlite3.Connection, run_id: str, step: str,
                        metrics: Mapping[str, float]) -> None:
        tx.executemany("INSERT OR REPLACE INTO metrics (run_id, step, name, value) "
                       "VALUES (?, ?, ?, ?)",
                       [(run_id, step, name, float(value)) for name, value in metrics.items()])

    def record_output(self, run_id: str, output: OutputRecord) -> None:
        with self._tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO outputs (run_id, step, name, device_path, local_path, "
                "kind, shape_json, nan_count, inf_count, png_path) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, output.step, output.name, output.device_path, output.local_path,
                 output.kind, json.dumps(list(output.shape)), output.nan_count,
                 output.inf_count, output.png_path))

    def finish_run(self, run_id: str, status: str, *, verdict: str | None = None,
                   diagnosis: str | None = None,
                   temps_after: Mapping[str, Any] | None = None,
                   ended_at: float | None = None) -> None:
        """Close a run: ``ok``, ``failed`` or ``interrupted``."""
        if status not in FINAL_STATUSES:
            raise UsageError(f"run status must be one of {', '.join(FINAL_STATUSES)}, "
                             f"not {status!r}")
        with self._tx() as tx:
            cursor = tx.execute(
                "UPDATE runs SET status = ?, verdict = ?, diagnosis = ?, "
                "temps_after_json = ?, ended_at = ? WHERE id = ?",
                (status, verdict, diagnosis,
                 _dumps(dict(temps_after) if temps_after is not None else None),
                 time.time() if ended_at is None else ended_at, run_id))
            if cursor.rowcount != 1:
                raise UsageError(f"no run {run_id!r} in {self.path}")

    def mark_abandoned(self) -> list[str]:
        """Turn this host's ``running`` rows whose holder died into ``abandoned``.

        Rows of other hosts are left alone: their holders cannot be checked from here.
        Returns the ids marked.
        """
        rows = self.conn.execute("SELECT id, host, holder_pid, holder_start FROM runs "
                                 "WHERE status = 'running' AND holder_pid IS NOT NULL "
                                 "AND host = ?", (socket.gethostname(),)).fetchall()
        dead = [r["id"] for r in rows
                if Holder(r["host"], r["holder_pid"], r["holder_start"] or "").dead_here()]
        if dead:
            with self._tx() as tx:
                tx.executemany(
                    "UPDATE runs SET status = 'abandoned', diagnosis = COALESCE(diagnosis, "
                    "'abandoned: the harness process that ran it died (killed, or the host "
                    "crashed) before it could record an end') WHERE id = ? AND status = "
                    "'running'", [(run_id,) for run_id in dead])
        self._mark_benches_abandoned()
        return dead

    def _mark_benches_abandoned(self) -> None:
        """The same for benches (``harness bench --resume`` still takes them over)."""
        rows = self.conn.execute("SELECT id, host, holder_pid, holder_start FROM benches "
                                 "WHERE status = 'running' AND holder_pid IS NOT NULL "
                                 "AND host = ?", (socket.gethostname(),)).fetchall()
        dead = [(r["id"],) for r in rows
                if Holder(r["host"], r["holder_pid"], r["holder_start"] or "").dead_here()]
        if dead:
            with self._tx() as tx:
                tx.executemany("UPDATE benches SET status = 'abandoned', ended_at = NULL "
                               "WHERE id = ? AND status = 'running'", dead)

    # ---- reading ---------------------------------------------------------------------------

    def list_runs(self, limit: int | None = 20, *, recipe: str | None = None,
                  serial: str | None = None, status: str | None = None,
                  bench_id: str | None = None) -> list[RunRecord]:
        """Newest first, filtered by any of recipe, serial, status, bench id."""
        if status is not None and status not in RUN_STATUSES:
            raise UsageError(f"status must be one of {', '.join(RUN_STATUSES)}")
        self.mark_abandoned()
        args = {"recipe": recipe, "serial": serial, "status": status, "bench_id": bench_id,
                "limit": -1 if limit is None else int(limit)}
        return [_run(row) for row in self.conn.execute(_LIST_RUNS, args)]

    def resolve_id(self, prefix: str) -> str:
        """The full id of the run whose id starts with ``prefix`` (case-insensitive)."""
        text = prefix.strip().upper()
        if not text:
            raise UsageError("empty run id")
        rows = self.conn.execute("SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id "
                                 "LIMIT 6", (text, text + "\U0010ffff")).fetchall()
        if not rows:
            raise UsageError(f"no run {prefix!r} in {self.path}",
                             hint="see `harness runs list`")
        if len(rows) > 1:
            shown = ", ".join(r["id"] for r in rows[:5])
            raise UsageError(f"run id {prefix!r} is ambiguous: {shown}"
                             f"{', ...' if len(rows) > 5 else ''}")
        return str(rows[0]["id"])

    def get_run(self, id_or_prefix: str) -> RunDetail:
        """A run with its plan, steps, metrics and outputs (a unique id prefix is enough)."""
        run_id = self.resolve_id(id_or_prefix)
        row = self.conn.execute(_SELECT_RUNS + " WHERE id = ?", (run_id,)).fetchone()
        steps = [StepRecord(r["idx"], r["name"], r["command"], r["exit_code"], r["seconds"],
                            r["signal"], r["stdout_tail"] or "", r["stderr_tail"] or "",
                            r["diagnosis"], tuple(_loads(r["perf_issues_json"]) or ()))
                 for r in self.conn.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY idx",
                                            (run_id,))]
        metrics = [MetricRecord(r["step"], r["name"], r["value"]) for r in self.conn.execute(
            "SELECT step, name, value FROM metrics WHERE run_id = ? ORDER BY rowid", (run_id,))]
        outputs = [OutputRecord(r["step"], r["name"], r["device_path"], r["kind"],
                                tuple(json.loads(r["shape_json"])), r["local_path"],
                                r["nan_count"], r["inf_count"], r["png_path"])
                   for r in self.conn.execute("SELECT * FROM outputs WHERE run_id = ? "
                                              "ORDER BY rowid", (run_id,))]
        return RunDetail(_run(row), json.loads(row["plan_json"]), steps, metrics, outputs)

    def metric_values(self, recipe: str, name: str, *, serial: str | None = None,
                      statuses: Sequence[str] = ("ok",),
                      limit: int = 1000) -> list[tuple[str, float, float]]:
        """``(run id, started_at, value)`` of one metric over runs, newest first (for bench)."""
        args = {"recipe": recipe, "name": name, "statuses": json.dumps(list(statuses)),
                "serial": serial, "limit": int(limit)}
        return [(r[0], r[1], r[2]) for r in self.conn.execute(_METRIC_VALUES, args)]
