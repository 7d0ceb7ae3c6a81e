"""``harness runs list|show``: stored runs, what ran, where, and what it measured."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.cli.options import Output, db_option, output_options
from harness.console import escape, out

if TYPE_CHECKING:
    from harness.results.store import RunDetail, RunRecord



def _when(stamp: float | None) -> str:
    return "" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _temps_text(temps: dict[str, Any] | None) -> str:
    """``battery 31.2 °C, hottest 36.8 °C (cpu-1-0-0)`` from a run's stored temperatures."""
    if not temps:
        return "not recorded"
    parts = []
    if temps.get("battery_c") is not None:
        parts.append(f"battery {temps['battery_c']:.1f} °C")
    zones = temps.get("zones") or {}
    if zones:
        name = max(zones, key=lambda n: zones[n])
        parts.append(f"hottest zone {zones[name]:.1f} °C ({name})")
    return ", ".join(parts) or "not recorded"


def _run_dict(run: RunRecord) -> dict[str, Any]:
    return asdict(run) | {"seconds": run.seconds}


@click.group("runs")
def runs() -> None:
    """Stored runs: list and show what ran, where, and what it measured."""


@runs.command("list")
@db_option
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs.")
@click.option("--recipe", default=None, help="Only this recipe.")
@click.option("--serial", default=None, help="Only this phone.")
@output_options("Print the runs as JSON.")
def runs_list(db_path: Path | None, limit: int, recipe: str | None, serial: str | None,
              output: Output) -> None:
    """List stored runs, newest first."""
    from harness.results.store import Store

    with Store.open(db_path) as store:
        items = store.list_runs(limit, recipe=recipe, serial=serial)
    output.emit([_run_dict(r) for r in items], lambda: _print_runs(items))


def _print_runs(items: list[RunRecord]) -> None:
    from rich.table import Table

    table = Table("started", "recipe", "serial", "status", "seconds", "verdict")
    table.add_column("id", no_wrap=True, min_width=len(items[0].id) if items else 2)
    for run in items:
        table.add_row(_when(run.started_at), run.recipe, run.serial or "", run.status,
                      "" if run.seconds is None else f"{run.seconds:.1f}",
                      " | ".join((run.verdict or "").splitlines()),
                      run.id)
    out.print(table)


def _print_detail(detail: RunDetail) -> None:
    from rich.table import Table

    run = detail.run
    out.print(f"[bold]run {escape(run.id)}[/]  {escape(run.recipe)}  [bold]{run.status}[/]",
              markup=True)
    out.print(f"phone {run.serial or '?'} on {run.host or '?'}, harness "
              f"{run.harness_version or '?'}; {_when(run.started_at)} -> "
              f"{_when(run.ended_at) or '(not finished)'}")
    for label, value in (("diagnosis", run.diagnosis), ("folder", run.run_dir),
                         ("bench", run.bench_id)):
        if value:
            out.print(f"{label}: {value}")
    out.print(f"temperatures: before {_temps_text(run.temps_before)}; after "
              f"{_temps_text(run.temps_after)}")
    verdicts = [v for v in (run.verdict or "").splitlines() if v]  # one per line
    out.print("verdicts: " + ("none" if not verdicts else f"{len(verdicts)}"))
    for verdict in verdicts:
        out.print(f"  - {verdict}")
    steps = Table("#", "step", "exit", "seconds", "diagnosis")
    for s in detail.steps:
        steps.add_row(str(s.index), s.name, "" if s.exit_code is None else str(s.exit_code),
                      "" if s.seconds is None else f"{s.seconds:.2f}", s.diagnosis or "")
    out.print(steps)
    metrics = Table("step", "metric", "value")
    for m in detail.metrics:
        metrics.add_row(m.step, m.name, f"{m.value:g}")
    out.print(metrics)
    for o in detail.outputs:
        out.print(f"output {o.step}/{o.name} ({o.kind} {'x'.join(map(str, o.shape))}): "
                  f"{o.png_path or o.local_path or o.device_path}"
                  f" NaN {o.nan_count if o.nan_count is not None else '?'}"
                  f" Inf {o.inf_count if o.inf_count is not None else '?'}")


@runs.command("show")
@click.argument("run_id")
@db_option
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the run's self-contained HTML report here (outputs, "
                   "telemetry timelines, steps and logs).")
@output_options("Print the run as JSON.")
def runs_show(run_id: str, db_path: Path | None, html: Path | None, output: Output) -> None:
    """Show one run (a unique prefix of its id is enough): steps, metrics, outputs."""
    from harness.results.store import Store

    with Store.open(db_path) as store:
        detail = store.get_run(run_id)
        if html is not None:
            from harness.cli.report import print_written
            from harness.report.write import write_run_report

            print_written(write_run_report(store, detail.run.id, html=html).files)
    output.emit({"run": _run_dict(detail.run), "plan": detail.plan,
                 "steps": [asdict(s) for s in detail.steps],
                 "metrics": [asdict(m) for m in detail.metrics],
                 "outputs": [asdict(o) for o in detail.outputs]}, lambda: _print_detail(detail))


COMMANDS: list[click.Command] = [runs]
