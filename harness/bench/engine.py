"""Run a bench: the matrix on every phone in parallel, each phone sequential, every run judged.

One worker thread per phone (all phones at once; one phone's runs one after another). A
worker leases its phone (:class:`harness.farm.lease.Lease`: other harness jobs wait or are
refused), syncs and verifies the asset sets of all its cells once, then for each cell runs
its warm-ups and repeats through the ordinary run path (:class:`harness.run.runner.Runner`)
— before each run waiting (bounded) for the phone to cool (:mod:`harness.bench.fairness`),
after it judging it (:mod:`harness.bench.validity`) and recording its conditions and
provenance on the run's row. Each run is committed as it completes (the runner does that).

Adaptive repeats: when the gate against the baseline says ``unknown`` for a series, the
phone's worker runs more repeats (what :func:`harness.bench.gate.compare` suggests, in
rounds of at most the configured repeat count) while the budget (``budget_min`` from the
bench's start) lasts.

Interruption (Ctrl-C, SIGTERM through :func:`harness.run.signals.signals_as_interrupts`):
the main thread sets the stop flag and cancels every worker's :class:`harness.cancel.Scope`:
that shuts down the worker's open adb sockets, and the worker raises
:class:`~harness.cancel.Cancelled` (a KeyboardInterrupt) itself, at the next point of
harness's own code that notices (a read or write that fails, a new connection, a sleep).
So each runner kills its step on the phone and stores the run ``interrupted`` through its
ordinary interrupt path, and each lease is released. Not ``PyThreadState_SetAsyncExc``: an
exception raised at any bytecode of another thread also lands inside the standard library
between a lock's acquire and its ``try`` (seen: in ``importlib._bootstrap``, after which
every later import of the process hung). The main thread waits (bounded:
:data:`STOP_WAIT_S`) until every worker says it is done; then the bench is marked
``interrupted`` and the interrupt goes on to the CLI.

The main thread never uses ``Thread.join`` or ``Thread.is_alive`` to learn whether a worker
is done. On CPython 3.11 (gh-90882), a signal whose handler raises (Ctrl-C, our SIGTERM)
while the main thread is inside ``join`` makes ``Thread._wait_for_tstate_lock`` release the
worker's state lock and mark it stopped although it still runs: its bpo-45274 clean-up takes
``lock.locked()`` (held by the running worker) for "this join acquired it". That worker was
then not waited for, and the process exited under it, its lease record left on the
phone. Each worker sets an event of its own as its very last act instead, and
the main thread waits in ``time.sleep``, which a signal leaves no trace in.

``--resume`` runs only what is missing: a (phone, series, warm-up or repeat index)
with an ``ok`` or ``failed`` run is finished.

A phone that vanishes (a step's phone does not come back, or its sync or lease fails) is
reported as a ``lost`` event; its worker stops and the others finish.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__, cancel
from harness.bench.conditions import Conditions, delta, read_conditions
from harness.bench.config import BenchConfig
from harness.bench.fairness import wait_cool
from harness.bench.gate import MAX_REPEATS, compare
from harness.bench.matrix import Cell, Matrix, build_matrix
from harness.bench.summary import Baseline, baseline_samples, judge_series, series_values
from harness.bench.validity import judge
from harness.device.device import Device
from harness.device.errors import DeviceError
from harness.errors import HarnessError
from harness.farm.inventory import Farm, ThermalLimits, load_farm
from harness.logs import get_logger
from harness.recipes.plan import Plan
from harness.results import benches
from harness.results.store import Store
from harness.run.runner import (
    RunEvents,
    Runner,
    RunOptions,
    RunRequest,
    build_plan,
    telemetry_options,
)

log = get_logger(__name__)

JOIN_POLL_S = 0.05  # how often the main thread looks whether the workers are done
# How long the main thread waits for the cancelled workers to unwind (a worker's clean-up on
# a phone that does not answer ends by the time-outs of its commands: the step's kill, the
# temperatures, the lease release, each 60 s at most); then it goes on (_kill_own_runs, and
# the process exits under that worker).
STOP_WAIT_S = 180.0
FINISHED = ("ok", "failed")  # a run with this status is not redone by --resume


@dataclass
class BenchRequest:
    config: BenchConfig
    shard: tuple[int, int] | None = None
    resume: str | None = None
    farm_path: Path | None = None
    db_path: Path | None = None
    logs_dir: Path = Path("logs")
    recipes_dirs: tuple[Path, ...] = ()
    tokenizer_dir: Path | None = None
    lease_wait_s: float = 0.0


@dataclass
class BenchEvents:
    """Progress callbacks for the CLI; all optional and called from worker threads."""

    phase: Callable[[str, str], None] = lambda serial, text: None
    run: Callable[[RunResult], None] = lambda result: None
    warning: Callable[[str], None] = lambda text: None


@dataclass(frozen=True)
class RunResult:
    run_id: str | None
    serial: str
    series: str
    repeat_idx: int
    warmup: bool
    status: str
    validity: str
    reason: str
    cool_wait_s: float
    metrics: dict[str, float]


@dataclass
class BenchReport:
    bench_id: str
    status: str
    rejected: list[dict[str, Any]]
    series: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    lost: dict[str, str]
    failed_runs: int
    regressions: int
    resumed: bool = False
    # the history's verdicts of tonight (harness.bench.history): regression, improvement,
    # quality, each with what changed since the last good night
    findings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plans_of(config: BenchConfig, request: BenchRequest) -> dict[str, Plan | str]:
    """Each entry's rendered plan (a recipe or parameter error stops the bench at once)."""
    return {e.series: build_plan(RunRequest(e.recipe, values=e.values(),
                                            recipes_dirs=request.recipes_dirs,
                                            tokenizer_dir=request.tokenizer_dir))
            for e in config.recipes}


def discover(request: BenchRequest) -> Farm:
    from dataclasses import replace

    from harness.farm.inventory import ensure_sim

    config = load_farm(request.farm_path)
    selectors = {request.config.selector_of(e) for e in request.config.recipes}
    if "sim" in selectors:
        ensure_sim()
        config = replace(config, include_sim=True)
    return Farm(config)


def _release(lease: Any) -> None:
    """Release ``lease``, also when the worker's cancellation is noticed in the release's
    own connection (a worker that was ending anyway): :class:`~harness.cancel.Cancelled` is
    raised once per worker, and the release is re-entrant
    (:meth:`harness.farm.lease.Lease.release`), so the second try goes through."""
    try:
        lease.release()
    except cancel.Cancelled:
        lease.release()


class Bench:
    """One ``harness bench``: :meth:`run` returns its :class:`BenchReport`."""

    def __init__(self, request: BenchRequest, events: BenchEvents | None = None) -> None:
        self.request = request
        self.events = events or BenchEvents()
        self.config = request.config
        self.bench_id = ""
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.lost: dict[str, str] = {}
        self.results: list[RunResult] = []
        self.baseline: dict[Any, Baseline] = {}
        self._sets: dict[str, Any] = {}  # asset sets by name
        self._devices: dict[str, Device] = {}
        self._current_signs: dict[str, str] = {}  # serial -> the farm file's current_sign
        self._threads: list[threading.Thread] = []
        self._done: list[threading.Event] = []  # each set by its worker as its last act
        self._scopes: list[cancel.Scope] = []  # each worker's, cancelled on an interrupt
        # serial -> the run a worker is in (runner, cell, index, warm-up, conditions before)
        self._current: dict[str, tuple[Runner, Cell, int, bool, Conditions, dict[str, Any],
                                       ThermalLimits]] = {}

    # ---- the whole bench --------------------------------------------------------------------

    def run(self) -> BenchReport:
        with Store.open(self.request.db_path) as store:
            resumed = self._open_bench(store)
        try:
            farm, matrix, done = self._setup(resumed)
            self._run_workers(farm, matrix, done)
        except KeyboardInterrupt as exc:
            self._interrupted(exc)
            raise
        except HarnessError as exc:  # before any run (a recipe, the farm, asset sets)
            with Store.open(self.request.db_path) as store:
                benches.add_event(store, self.bench_id, "error", detail={"error": str(exc)})
                benches.finish_bench(store, self.bench_id, "failed", {"error": str(exc)})
            raise
        return self._finish(matrix, resumed)

    def _setup(self, resumed: bool) -> tuple[Farm, Matrix, set[tuple[str, str, bool, int]]]:
        """The matrix, its rejections recorded, what is already done, the baseline."""
        plans = plans_of(self.config, self.request)
        farm = discover(self.request)
        matrix = build_matrix(self.config, plans, farm, farm.discover(), self.request.shard)
        with Store.open(self.request.db_path) as store:
            if not resumed:
                for r in matrix.rejected:
                    benches.add_event(store, self.bench_id, "rejected", r.serial, r.series,
                                      {"reason": r.reason})
            done = self._finished(store)
            self.baseline = baseline_samples(store, self.bench_id, self.config.baseline)
        self._load_sets(matrix)
        return farm, matrix, done

    def _load_sets(self, matrix: Matrix) -> None:
        """The asset sets of every cell, loaded once (the virtual farm's demo tree built
        once, here, not by several workers at a time)."""
        from harness.assets.sets import load_asset_sets
        from harness.farm.inventory import ensure_demo_assets

        available = load_asset_sets(self.request.recipes_dirs)
        names = {n for c in matrix.cells for n in c.plan.asset_sets}
        self._sets = {n: available[n] for n in names}
        ensure_demo_assets(e.src for s in self._sets.values() for e in s.entries)

    def _open_bench(self, store: Store) -> bool:
        shard = f"{self.request.shard[0]}/{self.request.shard[1]}" if self.request.shard \
            else None
        if self.request.resume:
            record = benches.reopen_bench(store, self.request.resume)
            self.bench_id = record.id
            self.config = BenchConfig.from_json(record.config_json)
            if record.shard:
                from harness.bench.matrix import parse_shard

                self.request.shard = parse_shard(record.shard)
            benches.add_event(store, self.bench_id, "resumed")
            return True
        self.bench_id = benches.create_bench(store, self.config.to_json(), shard,
                                             self.config.baseline)
        return False

    def _finished(self, store: Store) -> set[tuple[str, str, bool, int]]:
        return {(r.serial or "", r.series or "", r.warmup, r.repeat_idx or 0)
                for r in benches.bench_runs(store, self.bench_id)
                if r.status in FINISHED and r.repeat_idx is not None}

    def _run_workers(self, farm: Farm, matrix: Matrix,
                     done: set[tuple[str, str, bool, int]]) -> None:
        for serial in matrix.phones():
            finished, scope = threading.Event(), cancel.Scope()
            self._threads.append(threading.Thread(
                target=self._worker_then_done, name=f"bench-{serial}",
                args=(farm, matrix, serial, done, finished, scope), daemon=True))
            self._done.append(finished)
            self._scopes.append(scope)
        for t in self._threads:
            t.start()
        # time.sleep, not join (see the module's docstring): Ctrl-C raises out of it cleanly
        while not all(d.is_set() for d in self._done):
            time.sleep(JOIN_POLL_S)

    def _worker_then_done(self, farm: Farm, matrix: Matrix, serial: str,
                          done: set[tuple[str, str, bool, int]],
                          finished: threading.Event, scope: cancel.Scope) -> None:
        try:
            with cancel.scope(scope):
                self._worker(farm, matrix, serial, done)
        finally:
            finished.set()

    def _interrupted(self, exc: BaseException) -> None:
        from harness.run.signals import interrupt_name

        self._stop.set()
        why = f"interrupted ({interrupt_name(exc)})"
        for scope in self._scopes:
            scope.cancel(interrupt_name(exc))
        started = [d for t, d in zip(self._threads, self._done, strict=True)
                   if t.ident is not None]  # an interrupt may land among the starts
        deadline = time.monotonic() + STOP_WAIT_S
        while not all(d.is_set() for d in started) and time.monotonic() < deadline:
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C waits too
                time.sleep(JOIN_POLL_S)
        still = [t.name for t, d in zip(self._threads, self._done, strict=True)
                 if t.ident is not None and not d.is_set()]
        if still:
            log.warning("gave up waiting for %s after %gs", ", ".join(still), STOP_WAIT_S)
        self._kill_own_runs()
        with Store.open(self.request.db_path) as store:
            benches.interrupt_running(store, self.bench_id, f"{why}; killed on the phone")
            self._annotate_cut(store)
            benches.add_event(store, self.bench_id, "interrupted", detail={"why": why})
            benches.finish_bench(store, self.bench_id, "interrupted",
                                 {"interrupted": why, "resume": f"harness bench --resume "
                                                               f"{self.bench_id}"})

    def _kill_own_runs(self) -> None:
        """Kill what this process still runs on a phone: an interrupt that landed between
        a step's launch and the runner noting it leaves the step running there."""
        from harness.device.background import kill_orphans, live_runs_command, parse_live_runs
        from harness.holder import Holder

        me = Holder.me()
        for device in self._devices.values():
            with contextlib.suppress(HarnessError):
                live = parse_live_runs(device.run(live_runs_command(), timeout=60).out)
                mine = [r for r in live if r.holder is not None and r.holder.pid == me.pid
                        and r.holder.start == me.start and r.holder.host == me.host]
                if mine:
                    log.info("%s: killing %d run(s) the interrupt left", device.serial,
                             len(mine))
                    kill_orphans(device, mine)

    def _annotate_cut(self, store: Store) -> None:
        """Judge the runs the interrupt cut short in a worker (wherever it landed)."""
        for runner, cell, index, warm, before, provenance, limits in self._current.values():
            if runner.run_id is None:
                continue
            row = store.conn.execute("SELECT status, diagnosis FROM runs WHERE id = ?",
                                     (runner.run_id,)).fetchone()
            if row is not None:
                self._annotate(store, runner.run_id, cell, index, warm, provenance, before,
                               None, {}, row["status"], row["diagnosis"], limits)
        self._current.clear()

    # ---- one phone --------------------------------------------------------------------------

    def _worker(self, farm: Farm, matrix: Matrix, serial: str,
                done: set[tuple[str, str, bool, int]]) -> None:
        from harness.farm.lease import Lease

        cells = matrix.cells_of(serial)
        device = self._devices[serial] = matrix.devices[serial].device(farm)
        limits = self._limits(farm, serial)
        self._current_signs[serial] = farm.config.current_sign(serial)
        lease = Lease(serial, f"harness bench {self.bench_id}", self.request.lease_wait_s,
                      device, False, self.events.warning)
        try:
            with Store.open(self.request.db_path) as store:
                lease.acquire()
                provenance = self._prepare(store, device, cells)
                for cell in cells:
                    if not self._cell(store, device, cell, limits, provenance, done):
                        return
                self._extras(store, device, cells, limits, provenance)
        except KeyboardInterrupt:
            return
        except HarnessError as exc:
            self._lose(serial, str(exc))
        except Exception as exc:  # a worker thread's last resort
            # A bug must not make a phone vanish from the bench with exit 0 (seen: a worker
            # died in a sqlite error and the bench still ended "ok"): the phone is reported
            # lost with the error, which fails the bench, and the traceback goes to the log.
            log.exception("bench worker for %s failed", serial)
            self._lose(serial, f"harness error: {type(exc).__name__}: {exc}")
        finally:
            _release(lease)

    def _limits(self, farm: Farm, serial: str) -> ThermalLimits:
        base = farm.config.thermal_limits(serial)
        t = self.config.thresholds
        return ThermalLimits(base.battery_c if t.battery_c is None else t.battery_c,
                             base.cpu_c if t.cpu_c is None else t.cpu_c)

    def _lose(self, serial: str, why: str) -> None:
        with self._lock:
            self.lost[serial] = why
        self.events.warning(f"{serial} lost: {why}; the other phones go on")
        with contextlib.suppress(HarnessError), Store.open(self.request.db_path) as store:
            benches.add_event(store, self.bench_id, "lost", serial, None, {"reason": why})

    def _prepare(self, store: Store, device: Device, cells: Sequence[Cell]) -> dict[str, Any]:
        """Sync and verify every asset set the phone's cells use, once; the provenance."""
        from harness.assets.hashcache import HashCache
        from harness.assets.sync import Syncer, scan_set

        names = sorted({n for c in cells for n in c.plan.asset_sets})
        sets = [self._sets[n] for n in names]
        self.events.phase(device.serial, f"syncing and verifying {', '.join(names)}")
        syncer = Syncer(device, HashCache.open_default())
        syncer.scanned = {s.name: scan_set(s, syncer.cache) for s in sets}
        result = syncer.sync(sets, verify=True)
        benches.add_event(store, self.bench_id, "synced", device.serial, None,
                          {"sets": names, "pushed": len(result.pushed),
                           "verified": result.verified, "repaired": list(result.mismatched)})
        digests = {name: {f.remote.removeprefix("/data/local/tmp/"): f.sha256
                          for f in files} for name, files in syncer.scanned.items()}
        return {"asset_sets": digests, "harness_version": __version__,
                "fingerprint": device.facts().fingerprint}

    def _cell(self, store: Store, device: Device, cell: Cell, limits: ThermalLimits,
              provenance: dict[str, Any], done: set[tuple[str, str, bool, int]]) -> bool:
        """The cell's warm-ups and repeats not done yet; False when the phone is lost."""
        todo = [(True, i) for i in range(self.config.warmups_of(cell.entry))] + \
               [(False, i) for i in range(self.config.repeats_of(cell.entry))]
        for warm, index in todo:
            if (cell.serial, cell.series, warm, index) in done:
                continue
            if self._stop.is_set():
                return False
            result = self._one(store, device, cell, index, warm, limits, provenance)
            if result.status != "ok" and self._gone(device):
                self._lose(cell.serial, result.reason)
                return False
        return True

    @staticmethod
    def _gone(device: Device) -> bool:
        try:
            return device.state() != "device"
        except DeviceError:
            return True

    def _one(self, store: Store, device: Device, cell: Cell, index: int, warm: bool,
             limits: ThermalLimits, provenance: dict[str, Any]) -> RunResult:
        t = self.config.thresholds
        wait = wait_cool(lambda: read_conditions(device), limits, t.cool_wait_s,
                         stop=self._stop.is_set, sleep=cancel.sleep)
        if wait.was_hot:
            benches.add_event(store, self.bench_id, "cool-wait", cell.serial, cell.series,
                              wait.to_dict())
        sign = self._current_signs.get(cell.serial, "auto")
        options = RunOptions(thermal=limits, offline_wait_s=t.offline_wait_s,
                             telemetry=telemetry_options(None, cell.plan, sign),
                             bench_id=self.bench_id)
        runner = Runner(cell.plan, device, store, self.request.logs_dir,
                        RunEvents(warning=self.events.warning), (), False, options)
        what = "warm-up" if warm else "repeat"
        self.events.phase(cell.serial, f"{cell.series} {what} {index + 1}")
        status, diagnosis, metrics = "failed", None, {}
        self._current[cell.serial] = (runner, cell, index, warm, wait.conditions, provenance,
                                      limits)
        try:
            summary = runner.run()
            status, diagnosis = summary.status, summary.diagnosis
            metrics = {f"{s.name}/{k}": v for s in summary.steps for k, v in s.metrics.items()}
        except HarnessError as exc:
            diagnosis = str(exc)
        after = None
        with contextlib.suppress(HarnessError):
            after = read_conditions(device)
        verdict = self._annotate(store, runner.run_id, cell, index, warm, provenance,
                                 wait.conditions, after, wait.to_dict(), status, diagnosis,
                                 limits)
        self._current.pop(cell.serial, None)
        result = RunResult(runner.run_id, cell.serial, cell.series, index, warm, status,
                           verdict[0], verdict[1], wait.waited_s, metrics)
        with self._lock:
            self.results.append(result)
        self.events.run(result)
        return result

    def _annotate(self, store: Store, run_id: str | None, cell: Cell, index: int, warm: bool,
                  provenance: dict[str, Any], before: Conditions, after: Conditions | None,
                  wait: dict[str, Any], status: str, diagnosis: str | None,
                  limits: ThermalLimits) -> tuple[str, str]:
        clusters = delta(before, after) if after is not None else []
        verdict = judge(status, diagnosis, before, after, clusters, limits,
                        self.config.thresholds.run_cpu_c)
        if run_id is None:
            return verdict.validity, verdict.reason
        used = {n: provenance["asset_sets"].get(n, {}) for n in cell.plan.asset_sets}
        conditions = {
            "series": cell.series, "before": before.to_dict(),
            "after": after.to_dict() if after is not None else None, "cool_wait": wait,
            "clusters": [{"policy": c.policy, "top_khz": c.top_khz, "max_khz": c.max_khz,
                          "cap_khz": c.cap_khz, "seconds_by_khz": {str(k): v for k, v in
                                                                   c.seconds_by_khz.items()}}
                         for c in clusters],
            "limits": {"battery_c": limits.battery_c, "cpu_c": limits.cpu_c,
                       "run_cpu_c": self.config.thresholds.run_cpu_c}}
        benches.annotate_run(store, run_id, validity=verdict.validity, reason=verdict.reason,
                             repeat_idx=index, warmup=warm,
                             provenance={**provenance, "asset_sets": used},
                             conditions=conditions)
        return verdict.validity, verdict.reason

    # ---- adaptive repeats -------------------------------------------------------------------

    def _extras(self, store: Store, device: Device, cells: Sequence[Cell],
                limits: ThermalLimits, provenance: dict[str, Any]) -> None:
        deadline = self.started + 60.0 * self.config.budget_min
        for cell in cells:
            while not self._stop.is_set() and time.monotonic() < deadline:
                need = self._need(store, cell)
                if need <= 0:
                    break
                runs = benches.bench_runs(store, self.bench_id)
                mine = [r for r in runs if r.serial == cell.serial and r.series == cell.series
                        and not r.warmup and r.repeat_idx is not None]
                start = 1 + max((r.repeat_idx or 0 for r in mine), default=-1)
                for index in range(start, start + need):
                    if self._stop.is_set() or time.monotonic() >= deadline:
                        return
                    result = self._one(store, device, cell, index, False, limits, provenance)
                    if result.status != "ok" and self._gone(device):
                        self._lose(cell.serial, result.reason)
                        return

    def _need(self, store: Store, cell: Cell) -> int:
        """Extra repeats the gate asks for, this round (0: every series resolved)."""
        runs = [r for r in benches.bench_runs(store, self.bench_id)
                if r.serial == cell.serial and r.series == cell.series]
        need = 0
        for key, ref in self.baseline.items():
            if key.serial != cell.serial or key.series != cell.series:
                continue
            base = list(ref.values)
            tonight = series_values(runs, key)
            if len(base) < 2 or len(tonight) < 2:
                continue
            gate = compare(base, tonight, min_effect=self.config.thresholds.min_effect)
            if gate.verdict == "unknown":
                room = MAX_REPEATS - len(tonight)
                need = max(need, min(gate.more_repeats, room,
                                     self.config.repeats_of(cell.entry)))
        room = MAX_REPEATS - sum(1 for r in runs if not r.warmup)
        need = max(need, min(self._history_need(store, cell), room,
                             self.config.repeats_of(cell.entry)))
        return max(need, 0)

    def _history(self, store: Store) -> list[dict[str, Any]]:
        """Tonight's findings over the nights in the store (change points, the two-nights
        alert, attribution, output drift)."""
        from harness.bench.history import analyse

        analysis = analyse(store, bench_id=self.bench_id)
        return [{"serial": f.key.serial, "model": f.key.model, "recipe": f.key.recipe,
                 "metric": f.key.metric, "variant": f.key.variant, "kind": f.kind,
                 "median_before": f.median_before, "median_after": f.median_after,
                 "relative_change": f.relative_change, "p_value": f.p_value,
                 "last_good_bench": f.last_good_bench, "first_bad_bench": f.first_bad_bench,
                 "changes": list(f.changes), "detail": f.detail}
                for f in analysis.findings]

    def _history_need(self, store: Store, cell: Cell) -> int:
        """Extra runs tonight the history's nightly rule asks for (suspicious, unsettled)."""
        from harness.bench.history import analyse

        more = analyse(store, bench_id=self.bench_id).more_repeats
        return max((n for key, n in more.items()
                    if key.serial == cell.serial and key.recipe == cell.plan.recipe),
                   default=0)

    # ---- the end ----------------------------------------------------------------------------

    def _finish(self, matrix: Matrix, resumed: bool) -> BenchReport:
        with Store.open(self.request.db_path) as store:
            runs = benches.bench_runs(store, self.bench_id)
            series, marked = judge_series(runs, self.baseline, self.config)
            for run_id, reason in marked.items():
                benches.set_validity(store, run_id, "noisy", reason)
            runs = benches.bench_runs(store, self.bench_id)
            findings = self._history(store)
            # interrupted runs are redone by --resume: not failures of the bench
            failed = [r for r in runs if r.validity == "failed" and r.status == "failed"]
            regressions = sum(1 for s in series if s["verdict"] == "regression") + sum(
                1 for f in findings if f["kind"] in ("regression", "quality"))
            status = "regressed" if regressions else \
                "failed" if failed or self.lost else "ok"
            rejected = [{"serial": r.serial, "series": r.series, "reason": r.reason}
                        for r in matrix.rejected]
            report = BenchReport(
                self.bench_id, status, rejected, series,
                [{"id": r.id, "serial": r.serial, "series": r.series, "status": r.status,
                  "validity": r.validity, "repeat_idx": r.repeat_idx, "warmup": r.warmup}
                 for r in runs],
                dict(self.lost), len(failed), regressions, resumed, findings=findings)
            benches.finish_bench(store, self.bench_id, status,
                                 {"regressions": regressions, "failed_runs": len(failed),
                                  "lost": dict(self.lost), "series": series,
                                  "findings": findings})
        return report
