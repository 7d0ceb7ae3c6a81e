"""Execute a rendered plan on one phone and keep everything that happened.

select + lease a phone -> sync asset sets -> write token ids -> for each step: a background
run on the phone (live lines, timeout, killed on Ctrl-C or timeout), ``[Perf]`` parsed, a
diagnosis on failure -> pull outputs, PNGs, colour-block/NaN verdicts -> the store (each step
committed as it ends) and the run folder ``logs/<time>-<recipe>-<serial>/``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.device.background import BackgroundRun, RunOutcome
from harness.device.device import Device
from harness.device.facts import DeviceFacts
from harness.errors import HarnessError, UsageError
from harness.home import safe_name
from harness.recipes.lint import Finding, lint
from harness.recipes.plan import Plan, PlanStep
from harness.recipes.script import prepare_command, render_shell, step_command
from harness.results.store import OutputRecord, StepRecord, Store
from harness.run.blocks import find_output_blocks, write_overlay
from harness.run.diagnose import (
    diagnose_failure,
    diagnose_output,
    lmkd_kills,
)
from harness.run.images import convert_qfp32, read_qfp32
from harness.run.perf import PerfCollector
from harness.run.signals import interrupt_name
from harness.yamlpos import suggest

log = logging.getLogger(__name__)

TAIL_CHARS = 4000  # of stdout/stderr kept in the store (the run folder keeps everything)
LMKD_COMMAND = "logcat -d -b main -b system -b events 2>/dev/null | grep -iE 'lowmemorykiller|lmkd'"


@dataclass
class RunEvents:
    """Callbacks the CLI uses to show progress; all optional."""

    phase: Callable[[str], None] = lambda text: None
    line: Callable[[str, str, str], None] = lambda step, stream, text: None
    sync_progress: Callable[[int, int], None] = lambda done, total: None
    warning: Callable[[str], None] = lambda text: None


@dataclass
class StepSummary:
    name: str
    exit_code: int | None
    seconds: float
    metrics: dict[str, float]
    diagnosis: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # name -> PNG path


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


class Runner:
    """Runs one plan on one (already leased) device."""

    def __init__(self, plan: Plan, device: Device, store: Store, logs_dir: Path,
                 events: RunEvents | None = None, sync_sets: Sequence[Any] = (),
                 verify: bool = False) -> None:
        self.plan = plan
        self.device = device
        self.store = store
        self.events = events or RunEvents()
        self.sync_sets = list(sync_sets)
        self.verify = verify
        self.findings: list[Finding] = lint(plan)
        self.run_dir = run_folder(logs_dir, plan.recipe, device.serial)
        self._current: BackgroundRun | None = None
        self._interrupted: StepSummary | None = None  # the step a Ctrl-C/SIGTERM cut short

    def _phase(self, text: str) -> None:
        log.info("%s: %s", self.device.serial, text)
        self.events.phase(text)

    def run(self) -> RunSummary:
        log.info("%s: run %s into %s", self.device.serial, self.plan.recipe, self.run_dir)
        start = time.monotonic()
        facts = self.device.facts()
        (self.run_dir / "device.json").write_text(json.dumps(facts.to_dict(), indent=2))
        (self.run_dir / "plan.json").write_text(json.dumps(self.plan.to_dict(), indent=2))
        (self.run_dir / "run.sh").write_text(render_shell(self.plan))
        run_id = self.store.begin_run(self.plan, serial=self.device.serial,
                                      device=facts.to_dict(), run_dir=self.run_dir,
                                      temps_before=_temps(facts), host=socket.gethostname())
        steps: list[StepSummary] = []
        verdicts: list[str] = []
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
                after = self.device.facts()
            verdict = "; ".join(verdicts) or None
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

    def _run_step(self, run_id: str, index: int, step: PlanStep,
                  verdicts: list[str]) -> StepSummary:
        # One round trip: clear old outputs, then note the lmkd lines already in logcat.
        prep = prepare_command(step)
        snapshot = f"{{ {LMKD_COMMAND}; true; }}"
        lines = self.device.run(f"{prep} && {snapshot}" if prep else snapshot, check=True,
                                timeout=60).out
        lmkd_before = set(lines.splitlines())
        self._phase(f"step {step.name}: {step.binary}")
        collector = PerfCollector()
        logs = {name: (self.run_dir / f"{index:02d}-{step.name}.{name}").open("w")
                for name in ("stdout", "stderr")}

        def on_line(stream: str, line: str) -> None:
            logs[stream].write(line + "\n")
            logs[stream].flush()
            if stream == "stdout":
                collector.feed_line(line)
            self.events.line(step.name, stream, line)

        try:
            self._current = BackgroundRun.start(self.device, step_command(step),
                                                name=f"{self.plan.recipe}-{step.name}",
                                                run_id=run_id)
            outcome = self._current.attach(on_output=on_line, timeout=step.timeout_s)
        except KeyboardInterrupt as exc:
            for fh in logs.values():
                fh.close()
            self._kill_current()
            with contextlib.suppress(HarnessError, sqlite3.Error, OSError):
                self._record_interrupted(run_id, index, step, collector, interrupt_name(exc))
            self._current = None
            raise
        finally:
            for fh in logs.values():
                fh.close()
        self._current = None
        report = collector.report()
        (self.run_dir / f"{index:02d}-{step.name}.perf.json").write_text(
            json.dumps({"metrics": report.metrics,
                        "issues": [asdict(i) for i in report.issues]}, indent=2))
        diagnosis = None
        if not outcome.ok:
            diagnosis = self._diagnose(step, outcome, lmkd_before)
        summary = StepSummary(step.name, outcome.exit_code, outcome.duration_s,
                              dict(report.metrics), diagnosis)
        self.store.record_step(run_id, StepRecord(
            index, step.name, step_command(step), outcome.exit_code, outcome.duration_s,
            outcome.signal, outcome.stdout.decode("utf-8", "replace")[-TAIL_CHARS:],
            outcome.stderr.decode("utf-8", "replace")[-TAIL_CHARS:], diagnosis,
            tuple(f"line {i.line_no}: {i.reason}: {i.line}" for i in report.issues)),
            report.metrics)
        if outcome.ok:
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

    def _diagnose(self, step: PlanStep, outcome: RunOutcome, before: set[str]) -> str:
        lmkd: list[str] = []
        if outcome.exit_code in (None, 137):
            now = self.device.run(LMKD_COMMAND, timeout=60).out.splitlines()
            lmkd = lmkd_kills("\n".join(ln for ln in now if ln not in before), step.binary)
        findings = [f for f in self.findings if f.step in (None, step.name)]
        return diagnose_failure(step.binary, outcome.exit_code,
                                outcome.stderr.decode("utf-8", "replace"),
                                outcome.stdout.decode("utf-8", "replace"), lmkd, findings,
                                outcome.timed_out, step.timeout_s)

    def _collect_outputs(self, run_id: str, step: PlanStep, summary: StepSummary,
                         verdicts: list[str]) -> None:
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

ENV_OVERRIDE_RE = re.compile(
    r"^(?P<step>[\w-]+)\.(?:env\.(?P<key>[A-Za-z_]\w*)|(?P<field>cwd|unset))=(?P<value>.*)$",
    re.S)


@dataclass(frozen=True)
class StepOverride:
    step: str
    kind: str  # "env" | "cwd" | "unset"
    key: str
    value: str


def split_set_pairs(pairs: Sequence[str]) -> tuple[list[str], list[StepOverride]]:
    """``--set`` takes recipe parameters (``steps=30``) and, to reproduce failures, step
    overrides: ``STEP.env.KEY=VALUE``, ``STEP.unset=KEY``, ``STEP.cwd=DIR``."""
    params: list[str] = []
    overrides: list[StepOverride] = []
    for pair in pairs:
        match = ENV_OVERRIDE_RE.match(pair)
        if match is None:
            params.append(pair)
        elif match["key"]:
            overrides.append(StepOverride(match["step"], "env", match["key"], match["value"]))
        else:
            overrides.append(StepOverride(match["step"], match["field"], match["value"],
                                          match["value"]))
    return params, overrides


def apply_overrides(plan: Plan, overrides: Sequence[StepOverride]) -> Plan:
    steps = {s.name: s for s in plan.steps}
    for o in overrides:
        if o.step not in steps:
            raise UsageError(f"--set {o.step}.{o.kind}: recipe {plan.recipe} has no step "
                             f"{o.step!r}{suggest(o.step, steps)}")
        step = steps[o.step]
        env = dict(step.env)
        if o.kind == "env":
            env[o.key] = o.value
            steps[o.step] = replace(step, env=env)
        elif o.kind == "unset":
            if o.key not in env:
                raise UsageError(f"--set {o.step}.unset={o.key}: the step sets no {o.key}"
                                 f"{suggest(o.key, env)}")
            del env[o.key]
            steps[o.step] = replace(step, env=env)
        else:
            if not o.value.startswith("/"):
                raise UsageError(f"--set {o.step}.cwd={o.value}: give an absolute device folder")
            steps[o.step] = replace(step, cwd=o.value)
    return replace(plan, steps=tuple(steps[s.name] for s in plan.steps))


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


def build_plan(request: RunRequest) -> Plan:
    from harness.recipes.load import render_recipe

    params, overrides = split_set_pairs(request.set_pairs)
    plan = render_recipe(request.recipe, request.values, params, request.recipes_dirs,
                         request.tokenizer_dir)
    return apply_overrides(plan, overrides)


def pick_device(request: RunRequest, plan: Plan) -> Device:
    """``auto``: a real phone that qualifies if one is attached, else a virtual one."""
    from harness.farm.inventory import SIM_SERVER_NAME, Farm, load_farm, resolve

    if request.selector != "auto":
        return resolve(request.selector, request.farm_path, plan.requirements)[0]
    farm = Farm(load_farm(request.farm_path))
    real = [d for d in farm.discover() if d.server.name != SIM_SERVER_NAME]
    for item in real:
        if not farm.select(item.serial, plan.requirements, real).rejected:
            return item.device(farm)
    return resolve("sim", request.farm_path, plan.requirements)[0]


def run_recipe(request: RunRequest, events: RunEvents | None = None) -> RunSummary:
    from harness.assets.sets import load_asset_sets
    from harness.farm.inventory import ensure_demo_assets
    from harness.farm.lease import Lease

    plan = build_plan(request)
    device = pick_device(request, plan)
    sets = []
    if request.sync:
        available = load_asset_sets(request.recipes_dirs)
        sets = [available[name] for name in plan.asset_sets]
        ensure_demo_assets(e.src for s in sets for e in s.entries)
    events = events or RunEvents()
    with Lease(device.serial, f"harness run {plan.recipe}", request.lease_wait_s, device,
               request.keep_orphans, events.warning), \
            Store.open(request.db_path) as store:
        return Runner(plan, device, store, request.logs_dir, events, sets,
                      request.verify).run()
