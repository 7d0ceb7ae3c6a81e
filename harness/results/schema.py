"""The results database schema, as an ordered list of registered migrations.

``PRAGMA user_version`` holds the number of the last migration applied. :func:`migrate`
applies the missing ones in order, all inside one ``BEGIN IMMEDIATE`` transaction, so two
processes opening a fresh database at once cannot both migrate it, and a failure leaves the
database as it was. A migration is a tuple of SQL statements or a callable taking the
connection. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

Migration = tuple[int, Sequence[str] | Callable[[sqlite3.Connection], None]]

RUN_STATUSES = ("running", "ok", "failed", "interrupted", "abandoned")
_V1_STATUSES = ("running", "ok", "failed", "interrupted")

_V1 = (
    f"""CREATE TABLE runs (
        id TEXT PRIMARY KEY,                  -- ULID: sortable by creation time
        recipe TEXT NOT NULL,
        plan_json TEXT NOT NULL,              -- Plan.to_dict(): what exactly ran
        params_json TEXT NOT NULL,
        serial TEXT,
        device_json TEXT,                     -- device facts (model, SoC, RAM, build, ...)
        host TEXT,
        harness_version TEXT,
        started_at REAL NOT NULL,             -- Unix seconds
        ended_at REAL,
        status TEXT NOT NULL CHECK (status IN {_V1_STATUSES!r}),
        verdict TEXT,
        diagnosis TEXT,
        temps_before_json TEXT,
        temps_after_json TEXT,
        run_dir TEXT
    )""",
    """CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        command TEXT NOT NULL,
        exit_code INTEGER,                    -- NULL: no exit status (killed, timed out)
        signal INTEGER,
        seconds REAL,
        stdout_tail TEXT,
        stderr_tail TEXT,
        diagnosis TEXT,
        PRIMARY KEY (run_id, idx)
    )""",
    """CREATE TABLE metrics (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        name TEXT NOT NULL,                   -- perf metric name, e.g. unet.s/step
        value REAL NOT NULL,
        PRIMARY KEY (run_id, step, name)
    )""",
    "CREATE INDEX metrics_by_name ON metrics (name, run_id)",
    """CREATE TABLE outputs (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        name TEXT NOT NULL,
        device_path TEXT NOT NULL,
        local_path TEXT,
        kind TEXT NOT NULL,                   -- image or latent
        shape_json TEXT NOT NULL,
        nan_count INTEGER,
        inf_count INTEGER,
        png_path TEXT,
        PRIMARY KEY (run_id, step, name)
    )""",
)

# Version 2: what bench and its reports query by; malformed [Perf] lines kept per step.
_V2 = (
    "ALTER TABLE runs ADD COLUMN bench_id TEXT",
    "CREATE INDEX runs_by_recipe_serial ON runs (recipe, serial, started_at)",
    "CREATE INDEX runs_by_bench ON runs (bench_id, started_at)",
    "CREATE INDEX runs_by_started ON runs (started_at)",
    "ALTER TABLE steps ADD COLUMN perf_issues_json TEXT",
)



def _v3(conn: sqlite3.Connection) -> None:
    """Version 3: status ``abandoned`` (a ``running`` row whose holder died) and who holds
    a running row (``holder_pid``, ``holder_start``; ``host`` already names the host).

    SQLite cannot change a CHECK constraint in place: the table is rebuilt (sqlite.org
    "Making Other Kinds Of Table Schema Changes"), with foreign keys off (see migrate).
    """
    cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    create = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND "
                          "name = 'runs'").fetchone()[0]
    new = create.replace(f"CHECK (status IN {_V1_STATUSES!r})",
                         f"CHECK (status IN {RUN_STATUSES!r})")
    if new == create:
        raise sqlite3.DatabaseError("migration 3: the runs table's status check not found")
    conn.execute(new.replace("CREATE TABLE runs", "CREATE TABLE runs_v3", 1))
    names = ", ".join(cols)  # column names read from the schema itself
    conn.execute(f"INSERT INTO runs_v3 ({names}) SELECT {names} FROM runs")  # noqa: S608
    conn.execute("DROP TABLE runs")
    conn.execute("ALTER TABLE runs_v3 RENAME TO runs")
    for statement in _V2[1:4]:  # the indexes on runs went with the old table
        conn.execute(statement)
    conn.execute("ALTER TABLE runs ADD COLUMN holder_pid INTEGER")
    conn.execute("ALTER TABLE runs ADD COLUMN holder_start TEXT")
    conn.execute("CREATE INDEX runs_by_status ON runs (status)")
    if conn.execute("PRAGMA foreign_key_check").fetchall():
        raise sqlite3.DatabaseError("migration 3 broke a foreign key")


BENCH_STATUSES = ("running", "ok", "regressed", "failed", "interrupted", "abandoned")
VALIDITIES = ("valid", "throttled", "hot-start", "noisy", "failed")

# Version 4: benches (one row per `harness bench`: a night of a nightly), and what each run
# of a bench needs to be judged and attributed. NULL in the new run columns: not a bench run.
_V4 = (
    f"""CREATE TABLE benches (
        id TEXT PRIMARY KEY,                  -- ULID, like run ids
        started_at REAL NOT NULL,
        ended_at REAL,
        status TEXT NOT NULL CHECK (status IN {BENCH_STATUSES!r}),
        config_json TEXT NOT NULL,            -- the bench config as run (matrix, repeats, ...)
        shard TEXT,                           -- "i/N", NULL when unsharded
        baseline TEXT,                        -- --baseline REF as given
        host TEXT,
        harness_version TEXT,
        holder_pid INTEGER,
        holder_start TEXT,
        summary_json TEXT                     -- the verdicts at the end (regressions, ...)
    )""",
    "CREATE INDEX benches_by_started ON benches (started_at)",
    """CREATE TABLE bench_events (
        bench_id TEXT NOT NULL REFERENCES benches(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        serial TEXT,                          -- NULL: the bench as a whole
        recipe TEXT,
        kind TEXT NOT NULL,                   -- rejected, lost, cool-wait, interrupted, ...
        detail_json TEXT,
        PRIMARY KEY (bench_id, seq)
    )""",
    f"ALTER TABLE runs ADD COLUMN validity TEXT CHECK (validity IS NULL OR validity IN "
    f"{VALIDITIES!r})",
    "ALTER TABLE runs ADD COLUMN validity_reason TEXT",
    "ALTER TABLE runs ADD COLUMN repeat_idx INTEGER",  # 0-based within its series and bench
    "ALTER TABLE runs ADD COLUMN warmup INTEGER NOT NULL DEFAULT 0",  # 1: not measured
    # {"asset_sets": {name: {path: sha256}}, "harness_version": ..., "fingerprint": ...}
    "ALTER TABLE runs ADD COLUMN provenance_json TEXT",
    # thermal status, temperatures, battery, cpu time_in_state deltas, caps, cool wait
    "ALTER TABLE runs ADD COLUMN conditions_json TEXT",
)

# Version 5: telemetry samples, long format: one row per (sample time, source). ``t`` is the
# phone's own clock in seconds since the step started; ``name`` is e.g. mem_available_kb,
# rss_kb, power_w, cpu0_cur_khz, gpu_busy_pct.
_V5 = (
    """CREATE TABLE samples (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        t REAL NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (run_id, step, t, name)
    ) WITHOUT ROWID""",
)

MIGRATIONS: list[Migration] = [(1, _V1), (2, _V2), (3, _v3), (4, _V4), (5, _V5)]
LATEST_VERSION = MIGRATIONS[-1][0]


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS,
            target: int | None = None) -> int:
    """Apply missing migrations up to ``target`` (default: all); return the new version.

    ``conn`` must be in autocommit mode (``isolation_level=None``): the transaction is ours.
    Foreign keys are off while migrating (a table rebuild must not cascade deletes; the
    pragma is a no-op inside a transaction, so it is set before), then restored.
    """
    foreign_keys = int(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        return _migrate(conn, migrations, target)
    finally:
        conn.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")


def _migrate(conn: sqlite3.Connection, migrations: Sequence[Migration],
             target: int | None) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        for version, step in migrations:
            if version <= current or (target is not None and version > target):
                continue
            if callable(step):
                step(conn)
            else:
                for statement in step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(version)}")
            current = version
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current
