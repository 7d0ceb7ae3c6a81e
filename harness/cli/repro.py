"""``harness repro sweep`` and ``harness repro bisect``: find which switch flips a failure."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.cli.options import db_option, emit_json, farm_option
from harness.console import err, escape, out

if TYPE_CHECKING:
    from rich.text import Text
from harness.errors import EXIT_RUN_FAILED

KIND_STYLE = {"clean": "green", "blocks": "yellow", "nan": "magenta", "oom": "red",
              "failed": "red", "lost": "dim", "mixed": "yellow"}


def _run_events() -> Any:
    from harness.run.runner import RunEvents

    def warning(text: str) -> None:
        if not text.startswith("lint "):  # forced on purpose: a sweep reproduces failures
            err.print(f"[yellow]warning:[/] {escape(text)}", markup=True)

    def phase(text: str) -> None:
        if "offline" in text or text.endswith("is back; following the step again"):
            err.print(f"[bold cyan]>[/] {escape(text)}", markup=True)

    return RunEvents(phase=phase, warning=warning)


def _check_dest(dest: str | None) -> None:
    """Refuse a --json file whose folder does not exist before anything runs."""
    if dest not in (None, "-") and not Path(dest).resolve().parent.is_dir():
        raise click.BadParameter(f"folder of {dest} does not exist", param_hint="--json")


def _write_json(dest: str | None, data: Any) -> None:
    if dest is None:
        return
    if dest == "-":
        emit_json(data)
        return
    from harness.repro.sweep import write_json

    write_json(Path(dest), data)


def _block(kind: str, label: str) -> str:
    return f"[{KIND_STYLE.get(kind, 'white')}]■ {escape(label)}[/]"


def _cell(kind: str, label: str) -> Text:
    from rich.text import Text

    return Text(f"■ {label}", style=KIND_STYLE.get(kind, "white"))


@click.group("repro")
def repro() -> None:
    """Reproduce failures: sweep switches, bisect two plans."""


@repro.command("sweep")
@click.argument("recipe")
@click.option("--device", "-d", "selector", default="auto", show_default=True,
              envvar="ANDROID_SERIAL", show_envvar=True,
              help="Serial, nickname, sim, or tag:EXPR (one phone runs every cell).")
@click.option("--sweep", "sweeps", multiple=True, required=True, metavar="VAR=a,b,c",
              help="An axis: a recipe parameter, an environment switch a step sets (set in "
                   "every step that sets it), or a step override (STEP.env.KEY). Repeatable; "
                   "the cells are the cartesian product.")
@click.option("--set", "set_pairs", multiple=True, metavar="K=V",
              help="Fixed for every cell, as `harness run --set`.")
@click.option("--repeat", type=click.IntRange(1, 50), default=1, show_default=True,
              help="Runs per cell.")
@farm_option
@db_option
@click.option("--logs-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("logs"), show_default=True,
              help="Where run folders and the sweep folder go.")
@click.option("--recipes-dir", "recipes_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path), help="Extra recipe folder.")
@click.option("--no-sync", is_flag=True, help="Do not sync the recipe's asset sets first.")
@click.option("--json", "json_dest", default=None, metavar="P",
              help="Also write the verdict table as JSON to file P (- for stdout, then the "
                   "table is not printed).")
def sweep_cmd(recipe: str, selector: str, sweeps: tuple[str, ...], set_pairs: tuple[str, ...],
              repeat: int, farm_path: Path | None, db_path: Path | None, logs_dir: Path,
              recipes_dirs: tuple[Path, ...], no_sync: bool, json_dest: str | None) -> None:
    """Run a recipe over the matrix of --sweep values: contact sheet and verdict table."""
    from harness.repro.sweep import SweepEvents, run_sweep
    from harness.run.runner import RunRequest

    _check_dest(json_dest)
    request = RunRequest(recipe, selector, set_pairs=set_pairs, farm_path=farm_path,
                         db_path=db_path, logs_dir=logs_dir, recipes_dirs=recipes_dirs,
                         sync=not no_sync, force=True)
    events = SweepEvents(
        run_started=lambda cell, k: err.print(
            f"[bold cyan]>[/] cell {cell.index + 1}: {escape(cell.label)}"
            + (f" (repeat {k + 1})" if repeat > 1 else ""), markup=True),
        run_done=lambda cell, v: err.print(f"  {_block(v.kind, v.kind)} {escape(v.detail)}",
                                           markup=True),
        run=_run_events())
    result = run_sweep(request, sweeps, repeat, events)
    _write_json(json_dest, result.to_dict())
    if json_dest != "-":
        _print_sweep(result)


def _print_sweep(result: Any) -> None:
    from rich.table import Table

    table = Table(*[a.var for a in result.axes], "verdict", "colour blocks", "OOM", "NaN",
                  "time s", "detail")
    for cell in result.cells:
        runs = cell.verdicts
        blocks = [v.blocks_pct for v in runs if v.blocks_pct is not None]
        table.add_row(*[escape(value) for _var, value in cell.cell.settings],
                      _cell(cell.summary.kind, cell.summary.label()),
                      f"{max(blocks):.1f} %" if blocks else "-",
                      str(sum(v.kind == "oom" for v in runs)) if any(
                          v.kind == "oom" for v in runs) else "-",
                      str(sum(v.kind == "nan" for v in runs)) if any(
                          v.kind == "nan" for v in runs) else "-",
                      f"{cell.summary.seconds_median:.2f}"
                      if cell.summary.seconds_median is not None else "-",
                      escape(next((v.detail for v in runs if v.detail), "")[:80]))
    out.print(table)
    out.print(f"contact sheet: {escape(str(result.sheet))}")
    out.print(f"sweep: {escape(str(result.folder / 'sweep.json'))} ({len(result.cells)} "
              f"cells on {escape(result.serial)})")


@repro.command("bisect")
@click.option("--good", required=True, metavar="RUN|PLAN",
              help="The good end: a run id (or unique prefix) or a plan JSON file.")
@click.option("--bad", required=True, metavar="RUN|PLAN", help="The bad end, likewise.")
@click.option("--device", "-d", "selector", default="auto", show_default=True,
              envvar="ANDROID_SERIAL", show_envvar=True,
              help="Serial, nickname, sim, or tag:EXPR (every probe runs there).")
@click.option("--repeat", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Runs per probe (an inconclusive probe gets more).")
@click.option("--max-repeats", type=click.IntRange(1, 60), default=12, show_default=True,
              help="At most this many runs per probe.")
@farm_option
@db_option
@click.option("--logs-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("logs"), show_default=True, help="Where run folders go.")
@click.option("--no-sync", is_flag=True, help="Do not sync the plans' asset sets first.")
@click.option("--json", "json_dest", default=None, metavar="P",
              help="Also write the probes and the answer as JSON to file P (- for stdout).")
def bisect_cmd(good: str, bad: str, selector: str, repeat: int, max_repeats: int,
               farm_path: Path | None, db_path: Path | None, logs_dir: Path, no_sync: bool,
               json_dest: str | None) -> None:
    """Delta-debug the differences between a good and a bad plan down to the few that flip
    the verdict (ddmin; each probe judged by the detectors or the pairwise timing gate)."""
    from harness.repro.bisect import BisectEvents, Bisector
    from harness.repro.sources import load_plan
    from harness.repro.sweep import run_once
    from harness.run.runner import RunRequest, pick_device

    if max_repeats < repeat:
        raise click.UsageError("--max-repeats must be at least --repeat")
    _check_dest(json_dest)
    good_plan, good_label = load_plan(good, db_path)
    bad_plan, bad_label = load_plan(bad, db_path)
    request = RunRequest(good_plan.recipe, selector, farm_path=farm_path, db_path=db_path,
                         logs_dir=logs_dir, sync=not no_sync, force=True)
    events = _run_events()
    quiet = json_dest == "-"

    def show(text: str) -> None:
        if not quiet:
            out.print(text, markup=True, highlight=False)

    bisector = Bisector(good_plan, bad_plan, lambda plan: run_once(plan, request, events),
                        repeat, max_repeats, BisectEvents(
                            baseline=lambda end, runs: show(
                                f"{end} ({escape(good_label if end == 'good' else bad_label)})"
                                f": {_block(runs[0].kind, runs[0].kind)} "
                                f"{escape(runs[0].detail[:100])}"),
                            probe=lambda p: show(
                                f"probe {p.number}: {_block(_probe_kind(p), p.outcome.value)}"
                                f"{' (cached)' if p.cached else ''} "
                                f"{escape('; '.join(c.describe() for c in p.changes))} "
                                f"[dim]({escape(p.why)})[/]")))
    show(f"{len(bisector.changes)} differences:")
    for change in bisector.changes:
        show(f"  - {escape(change.describe())}")
    device = pick_device(request, good_plan)
    request.selector = device.serial
    result = bisector.run()
    _write_json(json_dest, result.to_dict())
    show(f"answer ({result.mode}, {len(result.probes)} probes, {result.runs} probe runs):")
    for change in result.minimal:
        show(f"  [bold]{escape(change.describe())}[/]")
    if not result.minimal:
        sys.exit(EXIT_RUN_FAILED)


def _probe_kind(probe: Any) -> str:
    return {"fail": "oom", "pass": "clean"}.get(probe.outcome.value, "lost")


COMMANDS = [repro]
