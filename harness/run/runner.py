"""Execute a rendered plan on one phone and keep everything that happened.

select + lease a phone -> refuse a plan with unexpected lint errors (unless forced) -> check
temperatures (warn, ``hot-start`` verdict, optionally wait to cool) -> sync asset sets -> write
token ids -> for each step: check its declared inputs on the phone (in the same round trip as
its preparation), a background run on the phone (live lines, timeout, killed on Ctrl-C or
timeout; a phone that vanishes is waited for, announced, and the step stored with its partial
output and an unknown exit status), ``[Perf]`` parsed and named by the step's declared metrics,
a diagnosis on failure -> pull outputs, PNGs, colour-block/NaN verdicts -> the store (each step
committed as it ends) and the run folder ``logs/<time>-<recipe>-<serial>/``.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.device.background import BackgroundRun, RunOutcome
from harness.device.device import Device
from harness.device.devshell import quote
from harness.device.errors import DeviceError
from harness.device.facts import TEMPS_COMMAND, DeviceFacts
from harness.errors import HarnessError, UsageError
from harness.farm.inventory import Ahead, ThermalLimits
from harness.home import safe_name
from harness.logs import get_logger
from harness.recipes.lint import ERROR, SDXL_1024_MIN_RAM_GB, SDXL_1024_SIDE_PX, Finding, lint
from harness.recipes.overrides import apply_overrides, split_set_pairs
from harness.recipes.plan import Plan, PlanStep
from harness.recipes.script import (
    MISSING_PREFIX,
    missing_inputs,
    prepare_command,
    render_shell,
    step_command,
)
from harness.results.samples import step_samples
from harness.results.store import OutputRecord, StepRecord, Store
from harness.run import oom
from harness.run.diagnose import (
    Evidence,
    diagnose_failure,
    diagnose_output,
    lmkd_kills,
)
from harness.run.heat import hot_reasons, wait_cool
from harness.run.perf import PerfCollector, expect_metrics
from harness.run.signals import interrupt_name
from harness.run.telemetry import Sampler, TelemetryOptions
from harness.run.telemetry import describe as describe_telemetry
from harness.run.telemetry import keep as keep_telemetry

log = get_logger(__name__)

TAIL_CHARS = 4000  # of stdout/stderr kept in the store (the run folder keeps everything)
# The facts device selection read this long ago or less are the run's "before" facts (their
# temperatures read again); older ones (a --lease-wait) are read again in full.
FRESH_FACTS_S = 2.0
LMKD_COMMAND = "logcat -d -b main -b system -b events 2>/dev/null | grep -iE 'lowmemorykiller|lmkd'"
OFFLINE_WAIT_S = 30.0  # how long a step waits for a phone that vanished before giving up


@dataclass
class RunEvents:
    """Callbacks the CLI uses to show progress; all optional."""

    phase: Callable[[str], None] = lambda text: None
    line: Callable[[str, str, str], None] = lambda step, stream, text: None
    sync_progress: Callable[[int, int], None] = lambda done, total: None
    warning: Callable[[str], None] = lambda text: None


@dataclass
class RunOptions:
    """How careful a run is: heat, a vanished phone, forced lint findings, RAM advice."""

    thermal: ThermalLimits = field(default_factory=ThermalLimits)
    wait_cool_s: float = 0.0  # 0: do not wait, only warn
    offline_wait_s: float = OFFLINE_WAIT_S
    forced: tuple[Finding, ...] = ()  # lint errors the user ran anyway (--force)
    # phones of the farm with at least this much RAM (for an out-of-memory hint)
    fitting: Callable[[float], tuple[str, ...]] | None = None
    telemetry: TelemetryOptions = field(default_factory=TelemetryOptions)
    bench_id: str | None = None  # the run belongs to this bench (``harness bench``)


@dataclass
class StepSummary:
    name: str
    exit_code: int | None
    seconds: float
    metrics: dict[str, float]
    diagnosis: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # name -> PNG path
    oom: dict[str, Any] | None = None  # the out-of-memory verdict (harness.run.oom)


@dataclass
class RunSummary:
    run_id: str
    recipe: str
    serial: str
    status: str  # ok | failed | interrupted
    run_dir: Path
    steps: list[StepSummary]
    diagnosis: str | None
    verdicts: list[str]
    seconds: float
    temps_before: dict[str, Any]
    temps_after: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        return data


def _temps(facts: DeviceFacts | None) -> dict[str, Any]:
    if facts is None:
        return {}
    return {"battery_c": facts.battery_temp_c, "max_c": facts.max_temp_c,
            "zones": facts.thermal_c, "battery_level": facts.battery_level}


def run_folder(logs_dir: Path, recipe: str, serial: str) -> Path:
    base = logs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{recipe}-{safe_name(serial)}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def refused_findings(plan: Plan) -> list[Finding]:
    """Lint errors the recipe does not expect: ``harness run`` refuses them without --force."""
    return [f for f in lint(plan) if f.severity == ERROR and f.rule not in plan.expect_lint]


def needed_ram_gb(plan: Plan) -> float | None:
    """What the plan's model needs by the seed (SDXL 1024: 16 GB), else the recipe's minimum."""
    height, width = plan.params.get("height"), plan.params.get("width")
    if plan.family == "sdxl" and isinstance(height, int) and isinstance(width, int) \
            and max(height, width) >= SDXL_1024_SIDE_PX:
        return float(SDXL_1024_MIN_RAM_GB)
    return plan.requirements.min_ram_gb


@dataclass
class AnnouncingDevice(Device):
    """A device that says so when harness starts waiting for it to come back."""

    announce: Callable[[str], None] = lambda text: None

    def recover(self, timeout_s: float | None = None) -> None:
        if self.state() == "device":
            super().recover(timeout_s)
            return
        wait = self.recover_timeout_s if timeout_s is None else timeout_s
        self.announce(f"{self.serial} offline; waiting up to {wait:g} s for it to come back")
        super().recover(timeout_s)
        self.announce(f"{self.serial} is back; following the step again")


class StepLost(HarnessError):
    """The phone vanished during a step and did not come back in time."""


class Runner:
    """Runs one plan on one (already leased) device."""

    def __init__(self, plan: Plan, device: Device, store: Store, logs_dir: Path,
                 events: RunEvents | None = None, sync_sets: Sequence[Any] = (),
                 verify: bool = False, options: RunOptions | None = None) -> None:
        self.plan = plan
        self.device = device
        self.store = store
        self.events = events or RunEvents()
        self.options = options or RunOptions()
        self.sync_sets = list(sync_sets)
        self.verify = verify
        self.findings: list[Finding] = lint(plan)
        self.run_dir = run_folder(logs_dir, plan.recipe, device.serial)
        self._current: BackgroundRun | None = None
        self._warmed = False  # the output converters' imports begun (warm_output_imports)
        self._interrupted: StepSummary | None = None  # the step a Ctrl-C/SIGTERM cut short
        self._facts: DeviceFacts | None = None
        self._line_times: list[tuple[float | None, str]] = []  # the step's lines, seconds in
        self._before = oom.parse_probe("")  # the phone's clocks and memory before the step
        self.run_id: str | None = None  # once begun (a bench annotates an interrupted run)

    def _phase(self, text: str) -> None:
        log.info("%s: %s", self.device.serial, text)
        self.events.phase(text)

    def _warn(self, verdicts: list[str], text: str) -> None:
        verdicts.append(text)
        self.events.warning(text)

    def _start_facts(self, verdicts: list[str]) -> DeviceFacts:
        """The phone's facts at the start, after waiting (bounded) for it to cool."""
        limits, wait_s = self.options.thermal, self.options.wait_cool_s
        facts = self.device.fresh_facts(FRESH_FACTS_S)
        reasons = hot_reasons(facts, limits)
        if reasons and wait_s > 0:
            self.events.phase(f"{self.device.serial} is hot ({'; '.join(reasons)}); waiting "
                              f"up to {wait_s:g} s for it to cool")
            facts, reasons = wait_cool(self.device.facts, limits, wait_s)
            if not reasons:
                self.events.phase(f"{self.device.serial} cooled down "
                                  f"(max {facts.max_temp_c or 0:.1f} °C)")
        if reasons:
            waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
            self._warn(verdicts, f"hot-start: {'; '.join(reasons)}{waited}; figures of a hot "
                                 "phone are throttled")
        for finding in self.options.forced:
            where = f" [{finding.step}]" if finding.step else ""
            self._warn(verdicts, f"lint {finding.rule}{where} (run with --force): "
                                 f"{finding.message}")
        return facts

    def run(self) -> RunSummary:
        log.info("%s: run %s into %s", self.device.serial, self.plan.recipe, self.run_dir)
        start = time.monotonic()
        verdicts: list[str] = []
        facts = self._facts = self._start_facts(verdicts)
        (self.run_dir / "device.json").write_text(json.dumps(facts.to_dict(), indent=2))
        (self.run_dir / "plan.json").write_text(json.dumps(self.plan.to_dict(), indent=2))
        (self.run_dir / "run.sh").write_text(render_shell(self.plan))
        run_id = self.store.begin_run(self.plan, serial=self.device.serial,
                                      device=facts.to_dict(), run_dir=self.run_dir,
                                      temps_before=_temps(facts), host=socket.gethostname(),
                                      bench_id=self.options.bench_id)
        self.run_id = run_id
        steps: list[StepSummary] = []
        status, diagnosis = "ok", None
        try:
            self._prepare()
            for index, step in enumerate(self.plan.steps):
                summary = self._run_step(run_id, index, step, verdicts)
                steps.append(summary)
                if summary.exit_code != 0:
                    status, diagnosis = "failed", f"{step.name}: {summary.diagnosis}"
                    break
        except KeyboardInterrupt as exc:
            status, diagnosis = "interrupted", f"interrupted ({interrupt_name(exc)}); the " \
                                               "step was killed on the phone"
            self._kill_current()
            if self._interrupted is not None:
                steps.append(self._interrupted)
            raise
        except HarnessError as exc:
            status, diagnosis = "failed", str(exc)
            self._kill_current()
            raise
        finally:
            after = None
            with contextlib.suppress(HarnessError):
                after = self.device.temps()  # a real read; the rest cannot change
            verdict = "\n".join(verdicts) or None  # one verdict per line
            log.info("%s: run %s %s%s", self.device.serial, run_id, status,
                     f" ({diagnosis})" if diagnosis else "")
            self.store.finish_run(run_id, status, verdict=verdict, diagnosis=diagnosis,
                                  temps_after=_temps(after))
            summary_obj = RunSummary(run_id, self.plan.recipe, self.device.serial, status,
                                     self.run_dir, steps, diagnosis, verdicts,
                                     time.monotonic() - start, _temps(facts), _temps(after))
            (self.run_dir / "run.json").write_text(
                json.dumps(summary_obj.to_dict(), indent=2, default=str))
        return summary_obj

    def _prepare(self) -> None:
        if self.sync_sets:
            from harness.assets.sync import Syncer

            self._phase(f"syncing {', '.join(s.name for s in self.sync_sets)}")
            result = Syncer(self.device).sync(
                self.sync_sets, progress=lambda d, t, _p: self.events.sync_progress(d, t),
                verify=self.verify)
            self._phase(f"assets: {len(result.pushed)} file(s) pushed, "
                              f"{result.files_total - len(result.pushed)} already there")
        for token in self.plan.token_files:
            self.device.push_bytes(token.data(), token.dest)
        if self.plan.token_files:
            self._phase(f"wrote {len(self.plan.token_files)} token-id file(s)")

    def _kill_current(self) -> None:
        if self._current is not None:
            with contextlib.suppress(HarnessError):
                self._current.kill()

    def _missing_diagnosis(self, missing: Sequence[str]) -> str:
        parts = []
        for path in missing:
            source = self.plan.provider(path)
            parts.append(f"{path} (from {source})" if source else path)
        set_names = sorted({s for p in missing if (s := self.plan.asset_set_of(p))})
        push = (f"; push it: harness push {' '.join(set_names)} -d {self.device.serial}"
                if set_names else "")
        return f"not started: missing on the phone: {', '.join(parts)}{push}"

    def _store_step(self, run_id: str, index: int, step: PlanStep, summary: StepSummary,
                    out: str, err: str, signal: int | None,
                    issues: tuple[str, ...] = ()) -> None:
        self.store.record_step(run_id, StepRecord(
            index, step.name, step_command(step), summary.exit_code, summary.seconds, signal,
            out[-TAIL_CHARS:], err[-TAIL_CHARS:], summary.diagnosis, issues), summary.metrics)

    def _run_step(self, run_id: str, index: int, step: PlanStep,
                  verdicts: list[str]) -> StepSummary:
        # One round trip: check the inputs, clear old outputs, note the lmkd lines in logcat
        # and the clocks and memory, then (no input missing) start the step.
        prep = prepare_command(step)
        snapshot = f"{{ {LMKD_COMMAND}; true; }}; {oom.PROBE_COMMAND}"
        watched = AnnouncingDevice(self.device.serial, self.device.endpoint,
                                   self.options.offline_wait_s, announce=self.events.phase)
        started = time.monotonic()
        self._current, lines = BackgroundRun.start_after(
            f"{prep} && {snapshot}" if prep else snapshot, MISSING_PREFIX, watched,
            step_command(step), name=f"{self.plan.recipe}-{step.name}", run_id=run_id)
        missing = missing_inputs(lines)
        if missing or self._current is None:
            summary = StepSummary(step.name, None, 0.0, {}, self._missing_diagnosis(missing))
            self._store_step(run_id, index, step, summary, "", "", None)
            return summary
        if not self._warmed and any(s.outputs for s in self.plan.steps):
            # The step runs on the phone now: the host has CPU to spare for these imports.
            self._warmed = True
            warm_output_imports()
        lmkd_before = set(lines.splitlines())
        self._before, self._line_times = oom.parse_probe(lines), []
        self._phase(f"step {step.name}: {step.binary}")
        collector = PerfCollector()
        seen: dict[str, list[str]] = {"stdout": [], "stderr": []}
        logs = {name: (self.run_dir / f"{index:02d}-{step.name}.{name}").open("w")
                for name in ("stdout", "stderr")}

        def on_line(stream: str, line: str) -> None:
            logs[stream].write(line + "\n")
            logs[stream].flush()
            seen[stream].append(line)
            self._line_times.append((time.monotonic() - started, line))
            if stream == "stdout":
                collector.feed_line(line)
            self.events.line(step.name, stream, line)

        try:
            sampler = Sampler.start(self.device, self._current.pid, self.options.telemetry,
                                    self.events.warning)
            try:
                outcome = self._current.attach(on_output=on_line, timeout=step.timeout_s)
            finally:
                self._keep_telemetry(run_id, index, step, sampler)
        except KeyboardInterrupt as exc:
            for fh in logs.values():
                fh.close()
            self._kill_current()
            with contextlib.suppress(HarnessError, sqlite3.Error, OSError):
                self._record_interrupted(run_id, index, step, collector, interrupt_name(exc))
            self._current = None
            raise
        except DeviceError as exc:
            return self._lost_step(run_id, index, step, exc, seen, collector,
                                   time.monotonic() - started)
        finally:
            for fh in logs.values():
                fh.close()
        self._current = None
        return self._finish_step(run_id, index, step, outcome, collector, lmkd_before,
                                 verdicts)

    def _keep_telemetry(self, run_id: str, index: int, step: PlanStep,
                        sampler: Sampler | None) -> None:
        """Stop the step's sampler; store its samples and metrics (also for a step cut short)."""
        if sampler is None:
            return
        seen = sampler.stop()
        images = sum(1 for _s, out in self.plan.outputs if out.kind == "image") or 1
        with contextlib.suppress(sqlite3.Error, OSError):
            keep_telemetry(self.store, run_id, step.name, self.run_dir, seen, images)
        notes = describe_telemetry(seen)
        with contextlib.suppress(OSError), \
                (self.run_dir / f"{index:02d}-{step.name}.telemetry.log").open("w") as fh:
            fh.write("".join(f"{note}\n" for note in notes))
        for note in notes:
            log.info("%s: %s", self.device.serial, note)

    def _lost_step(self, run_id: str, index: int, step: PlanStep, exc: DeviceError,
                   seen: dict[str, list[str]], collector: PerfCollector,
                   seconds: float) -> StepSummary:
        """The phone vanished mid-step: keep what it printed, its exit status unknown."""
        current, self._current = self._current, None
        where = f" (background run {current.run_id} may still be running there)" \
            if current else ""
        diagnosis = (f"{self.device.serial} went offline during the step and did not come "
                     f"back within {self.options.offline_wait_s:g} s: exit status unknown"
                     f"{where}; last error: {exc}")
        summary = StepSummary(step.name, None, seconds, dict(collector.report().metrics),
                              diagnosis)
        self._store_step(run_id, index, step, summary, "\n".join(seen["stdout"]),
                         "\n".join(seen["stderr"]), None)
        return summary

    def _finish_step(self, run_id: str, index: int, step: PlanStep, outcome: RunOutcome,
                     collector: PerfCollector, lmkd_before: set[str],
                     verdicts: list[str]) -> StepSummary:
        report = collector.report()
        checked = expect_metrics(report.metrics, step.perf)
        (self.run_dir / f"{index:02d}-{step.name}.perf.json").write_text(
            json.dumps({"metrics": checked.metrics, "renamed": checked.renamed,
                        "missing": checked.missing,
                        "issues": [asdict(i) for i in report.issues]}, indent=2))
        diagnosis, verdict = (None, None) if outcome.ok else \
            self._diagnose(run_id, step, outcome, lmkd_before)
        summary = StepSummary(step.name, outcome.exit_code, outcome.duration_s,
                              dict(checked.metrics), diagnosis)
        if verdict is not None:
            summary.metrics.update(verdict.metrics())
            summary.oom = verdict.to_dict()
            (self.run_dir / f"{index:02d}-{step.name}.oom.json").write_text(
                json.dumps(summary.oom, indent=2))
        self._store_step(run_id, index, step, summary,
                         outcome.stdout.decode("utf-8", "replace"),
                         outcome.stderr.decode("utf-8", "replace"), outcome.signal,
                         tuple(f"line {i.line_no}: {i.reason}: {i.line}" for i in report.issues))
        if outcome.ok:
            for name in checked.missing:
                others = checked.ambiguous.get(name)
                why = (f" (ambiguous: {', '.join(others)} could each be it)" if others
                       else "")
                self._warn(verdicts, f"{step.name}: expected metric {name} was not "
                                     f"printed{why}")
            self._collect_outputs(run_id, step, summary, verdicts)
        return summary

    def _record_interrupted(self, run_id: str, index: int, step: PlanStep,
                            collector: PerfCollector, why: str) -> None:
        """Store the step that was running when the job was interrupted: no exit status,
        its output so far (the phone's files, which hold what the last poll had not brought
        yet; else the run folder's logs) and the figures parsed from it."""
        tails = {}
        for name in ("stdout", "stderr"):
            path = self.run_dir / f"{index:02d}-{step.name}.{name}"
            try:
                tails[name] = path.read_text(errors="replace")[-TAIL_CHARS:]
            except OSError:
                tails[name] = ""
            if self._current is not None:
                with contextlib.suppress(HarnessError):
                    remote = self.device.run(
                        ["tail", "-c", str(TAIL_CHARS), f"{self._current.run_dir}/{name}"],
                        timeout=15)
                    if remote.ok and len(remote.stdout) >= len(tails[name].encode()):
                        tails[name] = remote.out
        report = collector.report()
        seconds = None
        if self._current is not None:
            seconds = time.time() - self._current.started
        self._interrupted = StepSummary(step.name, None, seconds or 0.0, dict(report.metrics),
                                        f"interrupted ({why})")
        self.store.record_step(run_id, StepRecord(
            index, step.name, step_command(step), None, seconds, None, tails["stdout"],
            tails["stderr"], f"interrupted ({why}); killed on the phone",
            tuple(f"line {i.line_no}: {i.reason}: {i.line}" for i in report.issues)),
            report.metrics)

    def _evidence(self, step: PlanStep, text: str) -> Evidence:
        """Look on the phone for what a failure's message names (libraries), so hints hold."""
        lib_path = tuple(d for d in step.env.get("LD_LIBRARY_PATH", "").split(":") if d)
        names = sorted(set(re.findall(r'"(?:[^"]*/)?(lib[\w.+-]+\.so)"', text)))
        libraries: dict[str, tuple[str, ...]] = {}
        if names:
            dirs = list(dict.fromkeys([*lib_path, *(a.dest for a in self.plan.assets),
                                       self.plan.device_tmp]))
            candidates = [f"{d.rstrip('/')}/{n}" for n in names for d in dirs]
            found = set(self.device.run(
                " ".join(f"[ -f {quote(c)} ] && echo {quote(c)};" for c in candidates)
                + " true", timeout=60).out.split())
            libraries = {n: tuple(c for c in candidates if c in found and c.endswith("/" + n))
                         for n in names}
        providers = {p: src for _s, out in self.plan.outputs
                     if (src := self.plan.provider(p := out.path))}
        for asset in self.plan.assets:
            providers[asset.dest] = f"asset set {asset.set}"
            for name in names:
                if (Path(asset.src) / name).is_file():
                    providers.setdefault(name, f"asset set {asset.set}")
        for path in step.inputs:
            if (src := self.plan.provider(path)):
                providers[path] = src
        needs = needed_ram_gb(self.plan)
        fitting = None
        if needs is not None and self.options.fitting is not None:
            with contextlib.suppress(HarnessError):
                fitting = self.options.fitting(needs)
        ram = self._facts.marketed_ram_gb if self._facts else None
        return Evidence(lib_path, libraries, providers, ram, needs, fitting)

    def _diagnose(self, run_id: str, step: PlanStep, outcome: RunOutcome,
                  before: set[str]) -> tuple[str, oom.OomVerdict | None]:
        lmkd: list[str] = []
        verdict = None
        findings = [f for f in self.findings if f.step in (None, step.name)]
        stderr = outcome.stderr.decode("utf-8", "replace")
        stdout = outcome.stdout.decode("utf-8", "replace")
        evidence = self._evidence(step, f"{stderr}\n{stdout}")
        if outcome.exit_code in (None, 137):
            rooted = bool(self._facts and self._facts.rooted)
            now = self.device.run(f"{{ {LMKD_COMMAND}; true; }}; {oom.after_command(rooted)}",
                                  timeout=60).out.splitlines()
            new = "\n".join(ln for ln in now if ln not in before)
            lmkd = lmkd_kills(new, step.binary)
            verdict = oom.judge(self._oom_evidence(run_id, step, outcome, "\n".join(now), new,
                                                   evidence, {f.rule for f in findings}))
        if verdict is not None:
            return verdict.sentence(), verdict
        return diagnose_failure(step.binary, outcome.exit_code, stderr, stdout, lmkd, findings,
                                outcome.timed_out, step.timeout_s, evidence), None

    def _oom_evidence(self, run_id: str, step: PlanStep, outcome: RunOutcome, after: str,
                      new_logcat: str, ev: Evidence, rules: set[str]) -> oom.OomEvidence:
        """What harness.run.oom judges: ``after`` is what oom.after_command printed,
        ``new_logcat`` the lmkd lines that were not there before the step."""
        read = oom.parse_probe(after)
        samples = {}
        with contextlib.suppress(sqlite3.Error):
            samples = step_samples(self.store, run_id, step.name)
        total = read.mem_total_kb or self._before.mem_total_kb or (
            self._facts.mem_total_kb if self._facts else None)
        return oom.OomEvidence(
            step.binary, outcome.exit_code, outcome.timed_out, outcome.duration_s,
            tuple(self._line_times), new_logcat, read.kernel_log, read.kernel_unreadable,
            self._before.clock, read.clock, total, self._before.available_kb,
            read.available_kb, read.psi, samples, ev.ram_gb, ev.needs_ram_gb, ev.fitting,
            frozenset(rules))

    def _collect_outputs(self, run_id: str, step: PlanStep, summary: StepSummary,
                         verdicts: list[str]) -> None:
        # numpy and PIL: imported in the background since the first step began (warm_output_imports)
        from harness.run.blocks import find_output_blocks, write_overlay
        from harness.run.images import convert_qfp32, read_qfp32

        for out in step.outputs:
            raw = self.run_dir / f"{step.name}-{out.name}.qfp32"
            self.device.pull(out.path, raw)
            png = raw.with_suffix(".png")
            stats = convert_qfp32(raw, png, tuple(out.shape), self.plan.family)
            blocks = find_output_blocks(read_qfp32(raw, tuple(out.shape)), out.kind)
            fraction = {f"{out.name}.blocks_fraction": blocks.fraction}
            self.store.record_metrics(run_id, step.name, fraction)
            summary.metrics.update(fraction)
            if blocks.boxes:
                overlay = write_overlay(blocks, png, png.with_suffix(".blocks.png"))
                summary.outputs[f"{out.name}.blocks"] = str(overlay)
            verdict = diagnose_output(blocks, stats.nan_count, self.findings)
            if verdict:
                verdicts.append(f"{step.name}/{out.name}: {verdict}")
            summary.outputs[out.name] = str(png)
            self.store.record_output(run_id, OutputRecord(
                step.name, out.name, out.path, out.kind, tuple(out.shape), str(raw),
                stats.nan_count, stats.inf_count, str(png)))


# ---- from a recipe name to a finished run --------------------------------------------------

class LintRefused(UsageError):
    """``harness run`` refuses a plan with lint errors the recipe does not expect."""


@dataclass
class RunRequest:
    recipe: str
    selector: str = "auto"
    values: dict[str, Any] = field(default_factory=dict)
    set_pairs: tuple[str, ...] = ()
    farm_path: Path | None = None
    db_path: Path | None = None
    logs_dir: Path = Path("logs")
    lease_wait_s: float = 0.0
    recipes_dirs: tuple[Path, ...] = ()
    tokenizer_dir: Path | None = None
    sync: bool = True
    keep_orphans: bool = False  # refuse (instead of killing) runs of a dead harness
    verify: bool = False  # hash every synced file on the phone (catches same-size corruption)
    force: bool = False  # run despite lint errors (they are stored as verdicts)
    wait_cool_s: float = 0.0
    offline_wait_s: float = OFFLINE_WAIT_S
    telemetry: bool | None = None  # None: as the recipe says (parameter telemetry), else on
    telemetry_interval_s: float | None = None  # None: the recipe's telemetry_interval_s


def telemetry_options(request: RunRequest | None, plan: Plan,
                      current_sign: str = "auto") -> TelemetryOptions:
    """The command line's choice (``request``; None: a bench, which has none), else the
    recipe's parameters ``telemetry`` (bool) and ``telemetry_interval_s``, else on every
    0.1 s; ``current_sign`` from the farm file."""
    enabled = request.telemetry if request is not None else None
    if enabled is None:
        enabled = plan.params.get("telemetry") is not False
    interval = request.telemetry_interval_s if request is not None else None
    if interval is None:
        value = plan.params.get("telemetry_interval_s")
        interval = float(value) if isinstance(value, int | float) and value > 0 else None
    return TelemetryOptions(enabled, interval or TelemetryOptions.interval_s,
                            current_sign=current_sign)


def build_plan(request: RunRequest) -> Plan:
    from harness.recipes.load import render_recipe

    params, overrides = split_set_pairs(request.set_pairs)
    plan = render_recipe(request.recipe, request.values, params, request.recipes_dirs,
                         request.tokenizer_dir)
    return apply_overrides(plan, overrides)


def pick_device(request: RunRequest, plan: Plan, ahead: Ahead | None = None) -> Device:
    """``auto``: a real phone that qualifies if one is attached, else a virtual one.
    ``ahead``: the farm reads for ``request.selector``, started earlier."""
    from harness.farm.inventory import SIM_SERVER_NAME, Farm, load_farm, resolve

    if request.selector != "auto":
        return resolve(request.selector, request.farm_path, plan.requirements,
                       ahead=ahead)[0]
    farm = Farm(load_farm(request.farm_path))
    real = [d for d in farm.discover() if d.server.name != SIM_SERVER_NAME]
    for item in real:
        if not farm.select(item.serial, plan.requirements, real).rejected:
            return item.device(farm)
    return resolve("sim", request.farm_path, plan.requirements)[0]


def check_lint(plan: Plan, force: bool) -> tuple[Finding, ...]:
    """Refuse unexpected lint errors (LintRefused) unless ``force``; return the forced ones."""
    refused = refused_findings(plan)
    if refused and not force:
        shown = "; ".join(f"{f.rule}" + (f" [{f.step}]" if f.step else "") + f": {f.message}"
                          for f in refused)
        raise LintRefused(f"recipe {plan.recipe} has lint errors: {shown}",
                          hint="fix the recipe or --set, or run anyway with --force (the "
                               "findings are stored with the run)")
    return tuple(refused)


def _fitting(farm_path: Path | None) -> Callable[[float], tuple[str, ...]]:
    def fitting(min_gb: float) -> tuple[str, ...]:
        from harness.farm.inventory import Farm, load_farm

        return tuple(f"{d.nickname or d.serial} ({d.facts.marketed_ram_gb} GB)"
                     for d in Farm(load_farm(farm_path)).discover()
                     if d.facts is not None and d.facts.marketed_ram_gb is not None
                     and d.facts.marketed_ram_gb >= min_gb)
    return fitting


def _import_output_converters() -> None:
    with contextlib.suppress(Exception):  # a failure shows where the outputs need them
        import harness.run.blocks
        import harness.run.images  # noqa: F401 - imported for their cost only


def warm_output_imports() -> threading.Thread:
    """Import the output converters (numpy, PIL: ~0.1 s of CPU) in a background thread
    while the first step runs on the phone, so that its outputs find them imported. Not a
    daemon: an early exit waits for the import to finish rather than tear an extension
    module's initialisation down."""
    thread = threading.Thread(target=_import_output_converters, name="warm-imports")
    thread.start()
    return thread


def run_recipe(request: RunRequest, events: RunEvents | None = None) -> RunSummary:
    """Render the recipe and run it. The phone is looked up meanwhile (:class:`Ahead`): the
    recipe's errors still come first, and the lookup's after them."""
    ahead = Ahead(request.selector, request.farm_path) if Ahead.fits(request.selector) \
        else None
    return run_plan(build_plan(request), request, events, ahead)


def run_plan(plan: Plan, request: RunRequest, events: RunEvents | None = None,
             ahead: Ahead | None = None) -> RunSummary:
    """Run an already rendered ``plan`` as ``harness run`` does (``request.recipe``,
    ``values`` and ``set_pairs`` are not used: the plan says everything); repro's sweeps,
    bisection probes and replays come through here. ``ahead``: see :func:`pick_device`."""
    from harness.assets.sets import load_asset_sets
    from harness.farm.inventory import ensure_demo_assets, load_farm
    from harness.farm.lease import Lease

    forced = check_lint(plan, request.force)
    device = pick_device(request, plan, ahead)
    sets = []
    if request.sync:
        available = load_asset_sets(request.recipes_dirs)
        sets = [available[name] for name in plan.asset_sets]
        ensure_demo_assets(e.src for s in sets for e in s.entries)
    events = events or RunEvents()
    farm = load_farm(request.farm_path)
    options = RunOptions(farm.thermal_limits(device.serial),
                         request.wait_cool_s, request.offline_wait_s, forced,
                         _fitting(request.farm_path),
                         telemetry_options(request, plan, farm.current_sign(device.serial)))
    asked = time.monotonic()
    # The start's temperatures come in the lease's round trip (one fewer before the step).
    with Lease(device.serial, f"harness run {plan.recipe}", request.lease_wait_s, device,
               request.keep_orphans, events.warning, also=TEMPS_COMMAND) as lease, \
            Store.open(request.db_path) as store:
        device.prime_temps(lease.also_out, asked)
        return Runner(plan, device, store, request.logs_dir, events, sets,
                      request.verify, options).run()
