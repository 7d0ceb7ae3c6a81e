"""``harness bundle`` and ``harness replay``: hand a run to a colleague, run it again there."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.options import Output, db_option, farm_option, output_options
from harness.console import err, escape, out
from harness.errors import EXIT_RUN_FAILED


@click.command("bundle")
@click.argument("run_id")
@click.option("-o", "--output", "dest", type=click.Path(path_type=Path), default=None,
              help="The archive to write (default ./bundle-RECIPE-ID.tar.gz; a folder: the "
                   "default name in it).")
@click.option("--qfp32", is_flag=True, help="Also pack the raw float32 .qfp32 outputs.")
@db_option
@click.option("--recipes-dir", "recipes_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Extra recipe folder (for its asset sets).")
@output_options("Print the bundle's path and manifest as JSON.")
def bundle_cmd(run_id: str, dest: Path | None, qfp32: bool, db_path: Path | None,
               recipes_dirs: tuple[Path, ...], output: Output) -> None:
    """Pack one run into a .tar.gz: plan, run.sh, device facts, logs, perf, telemetry,
    PNGs, verdicts and the digests of its asset sets, with a README and a manifest."""
    from harness.repro.bundle import read_bundle, write_bundle

    path = write_bundle(run_id, dest, db_path=db_path, qfp32=qfp32, recipes_dirs=recipes_dirs)
    manifest = read_bundle(path).manifest
    output.emit({"bundle": str(path), "manifest": manifest},
                lambda: out.print(f"bundle {escape(str(path))}: run {manifest['run']['id']}, "
                                  f"{len(manifest['files'])} files, format "
                                  f"{manifest['format']}"))


@click.command("replay")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--device", "-d", "selector", required=True, envvar="ANDROID_SERIAL",
              show_envvar=True, help="The other phone: serial, nickname, sim, or tag:EXPR.")
@farm_option
@db_option
@click.option("--logs-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("logs"), show_default=True, help="Where the run folder goes.")
@click.option("--recipes-dir", "recipes_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Extra recipe folder (for its asset sets).")
@output_options("Print both sides as JSON.")
def replay_cmd(bundle: Path, selector: str, farm_path: Path | None, db_path: Path | None,
               logs_dir: Path, recipes_dirs: tuple[Path, ...], output: Output) -> None:
    """Run a bundle's plan on another phone (same asset digests, or synced from this host's
    matching assets) and show both runs side by side."""
    from harness.repro.replay import replay
    from harness.run.runner import RunEvents, RunRequest

    request = RunRequest("", selector, farm_path=farm_path, db_path=db_path,
                         logs_dir=logs_dir, recipes_dirs=recipes_dirs, force=True)

    def warning(text: str) -> None:
        if not text.startswith("lint "):
            err.print(f"[yellow]warning:[/] {escape(text)}", markup=True)

    result = replay(bundle, request, RunEvents(warning=warning))
    output.emit(result.to_dict(), lambda: _print_sides(result))
    if result.replay.status != "ok":
        sys.exit(EXIT_RUN_FAILED)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}{unit}"
    return f"{value}{unit}"


def _print_sides(result: Any) -> None:
    from rich.table import Table

    a, b = result.original, result.replay
    table = Table("", "original", "replay")
    rows: list[tuple[str, Any, Any]] = [
        ("run", a.run_id, b.run_id), ("phone", f"{a.serial} {a.model}", f"{b.serial} {b.model}"),
        ("RAM", a.ram, b.ram), ("status", a.status, b.status),
        ("verdict", a.verdict, b.verdict), ("detail", a.detail[:70], b.detail[:70]),
    ]
    for step in dict.fromkeys([*a.steps, *b.steps]):
        rows.append((f"{step} exit", a.exit_codes.get(step), b.exit_codes.get(step)))
        rows.append((f"{step} s", a.steps.get(step), b.steps.get(step)))
    for name in dict.fromkeys([*a.metrics, *b.metrics]):
        if not name.endswith("blocks_fraction"):
            rows.append((name, a.metrics.get(name), b.metrics.get(name)))
    rows += [("peak RSS kB", a.peak_rss_kb, b.peak_rss_kb),
             ("min MemAvailable kB", a.min_mem_available_kb, b.min_mem_available_kb),
             ("energy J", a.energy_j, b.energy_j)]
    for label, left, right in rows:
        table.add_row(escape(label), escape(_fmt(left)), escape(_fmt(right)))
    out.print(table)
    out.print(f"assets: {result.assets}")


COMMANDS = [bundle_cmd, replay_cmd]
