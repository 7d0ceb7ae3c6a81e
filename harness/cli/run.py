"""``harness run``: one recipe on one phone, with live output and a summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.options import FiniteFloat, Output, db_option, farm_option, output_options
from harness.console import err, escape, out
from harness.errors import EXIT_RUN_FAILED


@click.command("run")
@click.argument("recipe")
@click.option("--device", "-d", "selector", default="auto", show_default=True,
              envvar="ANDROID_SERIAL", show_envvar=True,
              help="Serial, nickname, sim, or tag:EXPR; auto = an attached phone that meets "
                   "the recipe's requirements, else a virtual phone. $ANDROID_SERIAL, as "
                   "for adb, when the option is not given.")
@click.option("--prompt", "-p", default=None, help="The prompt (recipe parameter prompt).")
@click.option("--negative", default=None, help="The negative prompt.")
@click.option("--seed", type=int, default=None, help="The seed.")
@click.option("--set", "set_pairs", multiple=True, metavar="K=V",
              help="A recipe parameter (steps=30), or a step override to reproduce a "
                   "failure: STEP.env.KEY=VALUE, STEP.unset=KEY, STEP.cwd=DIR. Repeatable.")
@farm_option
@db_option
@click.option("--logs-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("logs"), show_default=True, help="Where run folders go.")
@click.option("--lease-wait", type=FiniteFloat(min=0, max=7 * 24 * 3600), default=0.0,
              show_default=True,
              help="Seconds to wait for a phone another harness job holds.")
@click.option("--recipes-dir", "recipes_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path), help="Extra recipe folder.")
@click.option("--tokenizer-dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="A model's own vocab.json + merges.txt.")
@click.option("--no-sync", is_flag=True, help="Do not sync the recipe's asset sets first.")
@click.option("--keep-orphans", is_flag=True,
              help="Refuse to start (instead of killing them) when runs of a dead harness "
                   "still go on the phone.")
@click.option("--verify", is_flag=True, help="Hash every synced file on the phone and repair "
              "mismatches (catches same-size corruption).")
@click.option("--force", is_flag=True, help="Run even when lint finds errors the recipe does "
              "not expect (the findings are stored as verdicts).")
@click.option("--wait-cool", "wait_cool", type=click.FloatRange(min=0), default=0.0,
              metavar="S", help="When the phone starts hot, wait up to S seconds for it to "
              "cool (default: only warn and record a hot-start verdict).")
@click.option("--offline-wait", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="S", help="How long a step waits for a phone that went offline.")
@click.option("--telemetry-interval", type=FiniteFloat(min=0.01, max=3600), default=None,
              metavar="S", help="Seconds between telemetry samples on the phone (default "
              "0.1, or the recipe's telemetry_interval_s).")
@click.option("--no-telemetry", is_flag=True, help="Do not sample memory, power, heat and "
              "clocks during the steps.")
@click.option("--quiet", "-q", is_flag=True, help="No live output lines.")
@output_options("Print the run summary as JSON.")
def run_cmd(recipe: str, selector: str, prompt: str | None, negative: str | None,
            seed: int | None, set_pairs: tuple[str, ...], farm_path: Path | None,
            db_path: Path | None, logs_dir: Path, lease_wait: float,
            recipes_dirs: tuple[Path, ...], tokenizer_dir: Path | None, no_sync: bool,
            keep_orphans: bool, verify: bool, force: bool, wait_cool: float,
            offline_wait: float, telemetry_interval: float | None, no_telemetry: bool,
            quiet: bool, output: Output) -> None:
    """Run a recipe on a phone: sync, tokenize, run each step, parse [Perf], pull PNGs, store."""
    from harness.run.runner import RunRequest, run_recipe

    if verify and no_sync:
        raise click.UsageError("--verify checks the synced files: it cannot go with --no-sync")
    values: dict[str, Any] = {}
    for key, value in (("prompt", prompt), ("negative_prompt", negative), ("seed", seed)):
        if value is not None:
            values[key] = value
    live = not (quiet or output.json)
    events = _events(live)
    request = RunRequest(recipe, selector, values, set_pairs, farm_path, db_path, logs_dir,
                         lease_wait, recipes_dirs, tokenizer_dir, not no_sync,
                         keep_orphans=keep_orphans, verify=verify, force=force,
                         wait_cool_s=wait_cool, offline_wait_s=offline_wait,
                         telemetry=False if no_telemetry else None,
                         telemetry_interval_s=telemetry_interval)
    if live and err.is_terminal:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TransferSpeedColumn,
        )

        with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err,
                      transient=True) as bar:
            task = bar.add_task("sync", total=None, visible=False)
            events.sync_progress = lambda done, total: bar.update(
                task, completed=done, total=total, visible=done < total)
            summary = run_recipe(request, events)
    else:
        summary = run_recipe(request, events)
    output.emit(summary.to_dict(), lambda: _print_run(summary))
    if summary.status != "ok":
        sys.exit(EXIT_RUN_FAILED)


def _events(live: bool) -> Any:
    """Progress on stderr. Without live output (--quiet, --json) only what the user must know
    at once still shows: warnings and a phone gone offline; stdout stays parseable."""
    from harness.run.runner import RunEvents

    def phase(text: str) -> None:
        if live or "offline" in text or text.endswith("is back; following the step again"):
            err.print(f"[bold cyan]>[/] {escape(text)}", markup=True)

    def line(step: str, stream: str, text: str) -> None:
        if live:
            err.print(f"[dim]{step}{'!' if stream == 'stderr' else ':'}[/] {escape(text)}",
                      markup=True, highlight=False)

    def warning(text: str) -> None:
        err.print(f"[yellow]warning:[/] {escape(text)}", markup=True)

    return RunEvents(phase=phase, line=line, warning=warning)


def _print_run(summary: Any) -> None:
    from rich.table import Table

    table = Table("step", "exit", "wall s", "figures")
    for step in summary.steps:
        figures = "  ".join(f"{k}={v:g}" for k, v in step.metrics.items())
        table.add_row(step.name, "-" if step.exit_code is None else str(step.exit_code),
                      f"{step.seconds:.2f}", figures)
    out.print(table)
    for step in summary.steps:
        for name, png in step.outputs.items():
            out.print(f"output {step.name}/{name}: {png}")
    for verdict in summary.verdicts:
        out.print(f"[yellow]verdict:[/] {escape(verdict)}", markup=True)
    colour = {"ok": "green", "failed": "red", "interrupted": "yellow"}.get(summary.status,
                                                                           "yellow")
    out.print(f"[{colour}]{summary.status}[/] run {summary.run_id} on {summary.serial} in "
              f"{summary.seconds:.1f}s; folder {escape(str(summary.run_dir))}", markup=True)
    if summary.diagnosis:
        out.print(f"[red]diagnosis:[/] {escape(summary.diagnosis)}", markup=True)


COMMANDS = [run_cmd]
