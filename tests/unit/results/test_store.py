"""Results store: migrations, round trips, prefixes, concurrent writers, interrupted runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.recipes.load import render_recipe
from harness.recipes.plan import Plan
from harness.results.schema import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from harness.results.store import (
    OutputRecord,
    StepRecord,
    Store,
    StoreError,
    default_db_path,
    new_run_id,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return render_recipe("sdxl-1024")


def test_fresh_database_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    with Store.open(tmp_path / "r.sqlite") as store:
        assert store.version == LATEST_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"runs", "steps", "metrics", "outputs"} <= tables
        indexes = {r[0] for r in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "runs_by_recipe_serial" in indexes


def test_default_path_is_in_harness_home(home: Path) -> None:
    assert default_db_path() == home.resolve() / "results.sqlite"
    with Store.open() as store:
        assert store.path == default_db_path()


def test_migration_from_version_1_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=1) == 1
    conn.execute("INSERT INTO runs (id, recipe, plan_json, params_json, started_at, status) "
                 "VALUES ('01OLD', 'sd15-512', '{}', '{\"steps\": 20}', 1.0, 'ok')")
    conn.execute("INSERT INTO steps (run_id, idx, name, command) VALUES ('01OLD', 0, 'p', 'x')")
    conn.close()
    with Store.open(path) as store:
        assert store.version == LATEST_VERSION
        run = store.list_runs()[0]
        assert (run.id, run.params, run.bench_id) == ("01OLD", {"steps": 20}, None)
        assert store.get_run("01old").steps[0].perf_issues == ()


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "f.sqlite", isolation_level=None)

    def boom(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(conn, [*MIGRATIONS, (LATEST_VERSION + 1, boom)])
    assert schema_version(conn) == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(path)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(path)


def test_run_round_trip(tmp_path: Path, plan: Plan) -> None:
    with Store.open(tmp_path / "r.sqlite") as store:
        run_id = store.begin_run(plan, serial="SIM001", device={"soc": "SM8650", "ram_gb": 16},
                                 run_dir=tmp_path / "run", temps_before={"battery_c": 31.5},
                                 bench_id="b1")
        assert store.get_run(run_id).run.status == "running"
        store.record_step(run_id, StepRecord(0, "unet", "LD_LIBRARY_PATH=... x", 0, 70.5,
                                             stdout_tail="[Perf] CLIP ms=812.3",
                                             perf_issues=("line 3: no key=value figures",)),
                          {"clip.ms": 812.3, "unet.loop_s": 64.3368, "unet.s/step": 3.21684})
        store.record_step(run_id, StepRecord(1, "vae", "cd /data/local/tmp && ...", 0, 3.2),
                          {"s/it": 1.61393})
        store.record_output(run_id, OutputRecord("vae", "image", "/data/local/tmp/output/x",
                                                 "image", (1, 3, 1024, 1024), "out/x.qfp32", 0,
                                                 0, "out/x.png"))
        store.finish_run(run_id, "ok", verdict="valid", temps_after={"battery_c": 36.0})
        detail = store.get_run(run_id[:12].lower())
    run = detail.run
    assert (run.recipe, run.status, run.serial, run.bench_id) == ("sdxl-1024", "ok", "SIM001",
                                                                  "b1")
    assert run.device == {"soc": "SM8650", "ram_gb": 16}
    assert run.temps_before == {"battery_c": 31.5} and run.temps_after == {"battery_c": 36.0}
    assert run.params == plan.params and run.seconds is not None and run.seconds >= 0
    assert Plan.from_dict(detail.plan) == plan
    assert [s.name for s in detail.steps] == ["unet", "vae"]
    assert detail.steps[0].perf_issues == ("line 3: no key=value figures",)
    assert detail.metric("unet.s/step") == 3.21684
    assert detail.metric("s/it", step="vae") == 1.61393
    assert detail.outputs[0].shape == (1, 3, 1024, 1024)


def test_list_filters_and_order(tmp_path: Path, plan: Plan) -> None:
    with Store.open(tmp_path / "r.sqlite") as store:
        ids = [store.begin_run(plan, serial=f"S{i % 2}", started_at=1000.0 + i)
               for i in range(5)]
        assert [r.id for r in store.list_runs()] == ids[::-1]
        assert [r.id for r in store.list_runs(2)] == ids[:2:-1]
        assert {r.serial for r in store.list_runs(serial="S1")} == {"S1"}
        assert store.list_runs(recipe="sd15-512") == []
        assert len(store.list_runs(None, status="running")) == 5
        with pytest.raises(UsageError):
            store.list_runs(status="weird")


def test_metric_values_for_bench(tmp_path: Path, plan: Plan) -> None:
    with Store.open(tmp_path / "r.sqlite") as store:
        for i, value in enumerate((3.2, 3.3, 9.9)):
            run_id = store.begin_run(plan, serial="S", started_at=100.0 + i)
            store.record_metrics(run_id, "unet", {"unet.s/step": value})
            store.finish_run(run_id, "failed" if value > 9 else "ok")
        values = store.metric_values("sdxl-1024", "unet.s/step", serial="S")
    assert [v for _, _, v in values] == [3.3, 3.2]


def test_prefix_lookup(tmp_path: Path, plan: Plan) -> None:
    with Store.open(tmp_path / "r.sqlite") as store:
        a = store.begin_run(plan, run_id="01AAAA0000")
        store.begin_run(plan, run_id="01AAAB0000")
        assert store.resolve_id("01aaaa") == a
        with pytest.raises(UsageError, match="ambiguous"):
            store.resolve_id("01AAA")
        with pytest.raises(UsageError, match="no run"):
            store.get_run("ZZZ")


def test_finish_errors(tmp_path: Path, plan: Plan) -> None:
    with Store.open(tmp_path / "r.sqlite") as store:
        run_id = store.begin_run(plan)
        with pytest.raises(UsageError, match="status"):
            store.finish_run(run_id, "running")
        with pytest.raises(UsageError, match="no run"):
            store.finish_run("nope", "ok")


def test_run_ids_sort_by_time() -> None:
    ids = [new_run_id(1_700_000_000.0 + i) for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3 and all(len(i) == 26 for i in ids)


WRITER = textwrap.dedent("""\
    import sys
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from harness.recipes.load import render_recipe
    from harness.results.store import StepRecord, Store
    plan = render_recipe("sd15-512")
    tag, count = sys.argv[1], int(sys.argv[2])
    for i in range(count):
        # Reopen for every run: opening and closing a WAL database is where races hide.
        with Store.open(Path(sys.argv[3])) as store:
            run_id = store.begin_run(plan, serial=tag)
            store.record_step(run_id, StepRecord(0, "pipeline", "x", 0, 1.0),
                              {{"total_s": float(i), "s/step": 0.46}})
            store.finish_run(run_id, "ok")
""")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    count = 40
    procs = [subprocess.Popen([sys.executable, str(script), tag, str(count), str(db)],
                              stderr=subprocess.PIPE, text=True)
             for tag in ("A", "B", "C")]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with Store.open(db) as store:
        runs = store.list_runs(None)
        assert len(runs) == 3 * count
        assert {r.status for r in runs} == {"ok"}
        assert store.conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 6 * count
        assert store.conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 3 * count


OPENER = textwrap.dedent("""\
    import sys, time
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from harness.results.store import Store
    go, dbs = Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]]
    while not go.exists():
        time.sleep(0.001)
    for db in dbs:
        Store.open(db).close()
""")


def test_many_processes_creating_one_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Opening a fresh WAL database is not covered by SQLite's busy timeout (switching the
    journal mode can fail at once with "database is locked"); the open lock must cover it."""
    script = tmp_path / "opener.py"
    script.write_text(OPENER.format(repo=str(REPO)))
    go = tmp_path / "go"
    dbs = [str(tmp_path / f"fresh{i}.sqlite") for i in range(30)]
    procs = [subprocess.Popen([sys.executable, str(script), str(go), *dbs],
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    for db in dbs:
        with Store.open(Path(db)) as store:
            assert schema_version(store.conn) == LATEST_VERSION


CRASHER = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from harness.recipes.load import render_recipe
    from harness.results.store import StepRecord, Store
    store = Store.open(Path(sys.argv[1]))
    run_id = store.begin_run(render_recipe("sd15-512"), serial="CRASH")
    store.record_step(run_id, StepRecord(0, "pipeline", "x", None, 2.0, signal=9))
    print(run_id, flush=True)
    os._exit(1)  # dies without closing anything, as a killed harness would
""")


def test_a_crashed_run_becomes_abandoned_with_its_steps(tmp_path: Path, plan: Plan) -> None:
    db = tmp_path / "r.sqlite"
    script = tmp_path / "crash.py"
    script.write_text(CRASHER.format(repo=str(REPO)))
    result = subprocess.run([sys.executable, str(script), str(db)], capture_output=True,
                            text=True, timeout=120)
    run_id = result.stdout.strip()
    with Store.open(db) as store:
        detail = store.get_run(run_id)
        assert detail.run.status == "abandoned" and detail.run.ended_at is None
        assert "died" in (detail.run.diagnosis or "")
        assert detail.run.holder_pid is not None and detail.run.holder_pid != os.getpid()
        assert detail.steps[0].signal == 9 and detail.steps[0].exit_code is None
        assert store.list_runs(status="abandoned")[0].id == run_id


def test_a_live_holders_run_stays_running(tmp_path: Path, plan: Plan) -> None:
    with Store.open(tmp_path / "r.sqlite") as store:
        run_id = store.begin_run(plan, serial="LIVE")
        assert store.mark_abandoned() == []
        assert store.list_runs()[0].status == "running"
        # The same PID, started at another time (PID reuse): dead.
        store.conn.execute("UPDATE runs SET holder_start = 'other-boot:1' WHERE id = ?",
                           (run_id,))
        assert store.mark_abandoned() == [run_id]
        # Another host's row is never judged from here.
        other = store.begin_run(plan, serial="REMOTE", host="elsewhere")
        store.conn.execute("UPDATE runs SET holder_pid = 999999999 WHERE id = ?", (other,))
        assert store.mark_abandoned() == []


def test_migration_3_keeps_rows_and_steps_of_a_v2_database(tmp_path: Path,
                                                           plan: Plan) -> None:
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn, MIGRATIONS, target=2)
    conn.execute("INSERT INTO runs (id, recipe, plan_json, params_json, started_at, status) "
                 "VALUES ('R1', 'sd15-512', '{}', '{}', 1.0, 'running')")
    conn.execute("INSERT INTO steps (run_id, idx, name, command) VALUES ('R1', 0, 'p', 'x')")
    conn.close()
    with Store.open(db) as store:
        assert store.version == LATEST_VERSION
        assert store.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 1
        assert store.list_runs()[0].status == "running"  # no holder recorded: left alone
        store.conn.execute("UPDATE runs SET status = 'abandoned' WHERE id = 'R1'")
        with pytest.raises(sqlite3.IntegrityError):
            store.conn.execute("UPDATE runs SET status = 'bogus' WHERE id = 'R1'")
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrations_4_and_5_add_benches_validity_and_samples(tmp_path: Path,
                                                            plan: Plan) -> None:
    db = tmp_path / "v3.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, MIGRATIONS, target=3)
    conn.execute("INSERT INTO runs (id, recipe, plan_json, params_json, started_at, status) "
                 "VALUES ('R1', 'sd15-512', '{}', '{}', 1.0, 'ok')")
    conn.close()
    with Store.open(db) as store:
        c = store.conn
        row = c.execute("SELECT validity, warmup, provenance_json FROM runs").fetchone()
        assert tuple(row) == (None, 0, None)  # an old run is not a bench run
        c.execute("UPDATE runs SET validity = 'throttled' WHERE id = 'R1'")
        with pytest.raises(sqlite3.IntegrityError):
            c.execute("UPDATE runs SET validity = 'fine' WHERE id = 'R1'")
        c.execute("INSERT INTO benches (id, started_at, status, config_json) "
                  "VALUES ('B1', 2.0, 'running', '{}')")
        with pytest.raises(sqlite3.IntegrityError):
            c.execute("INSERT INTO benches (id, started_at, status, config_json) "
                      "VALUES ('B2', 2.0, 'great', '{}')")
        c.execute("INSERT INTO bench_events (bench_id, seq, at, kind) VALUES ('B1', 0, 2.5, "
                  "'lost')")
        c.execute("INSERT INTO samples VALUES ('R1', 'unet', 0.1, 'rss_kb', 1024.0)")
        c.execute("DELETE FROM runs WHERE id = 'R1'")  # samples go with their run
        assert c.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0


def test_a_bench_whose_holder_died_becomes_abandoned_and_a_live_ones_stays(
        tmp_path: Path) -> None:
    import socket

    from harness.holder import Holder

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    me = Holder.me()
    with Store.open(tmp_path / "b.sqlite") as store:
        for bench_id, pid in (("DEAD", int(gone)), ("LIVE", me.pid)):
            store.conn.execute("INSERT INTO benches (id, started_at, status, config_json, host, "
                               "holder_pid, holder_start) VALUES (?, 1.0, 'running', '{}', ?, "
                               "?, ?)", (bench_id, socket.gethostname(), pid, me.start))
    with Store.open(tmp_path / "b.sqlite") as store:  # opening marks the dead holders' rows
        status = dict(store.conn.execute("SELECT id, status FROM benches").fetchall())
    assert status == {"DEAD": "abandoned", "LIVE": "running"}
