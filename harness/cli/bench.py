"""``harness bench``: the nightly matrix on the farm; ``harness results merge``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.options import FiniteFloat, Output, db_option, farm_option, output_options
from harness.console import err, escape, out
from harness.errors import EXIT_RUN_FAILED

EXIT_REGRESSED = 6  # the bench ran and found a regression


@click.command("bench")
@click.option("--recipes", "recipes", default=None, metavar="R,...",
              help="Recipes (or series names of the config) to bench, comma-separated.")
@click.option("--device", "-d", "selector", default=None,
              help="Phones: all (default), a serial, nickname, sim, tag:EXPR or a group of "
                   "the config.")
@click.option("--repeat", type=click.IntRange(1, 200), default=None,
              help="Measured runs per phone x recipe (default 5).")
@click.option("--warmup", type=click.IntRange(0, 200), default=None,
              help="Unmeasured runs before them (default 1).")
@click.option("--budget", "budget", type=FiniteFloat(min=0), default=None, metavar="MIN",
              help="Minutes from the start within which adaptive extra repeats may run "
                   "(default 30).")
@click.option("--baseline", default=None, metavar="REF",
              help="Compare with this bench id, or `last` (per series, the newest earlier "
                   "bench that has it).")
@click.option("--shard", default=None, metavar="i/N",
              help="Only the phones of shard i of N (by a hash of the serial).")
@click.option("--resume", default=None, metavar="BENCH_ID",
              help="Finish an interrupted bench without redoing its finished runs.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A bench config file (YAML).")
@farm_option
@db_option
@click.option("--logs-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("logs"), show_default=True, help="Where run folders go.")
@click.option("--lease-wait", type=FiniteFloat(min=0, max=7 * 24 * 3600), default=0.0,
              show_default=True, help="Seconds to wait for a phone another job holds.")
@click.option("--recipes-dir", "recipes_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path), help="Extra recipe folder.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="P", help="Also write the bench report as JSON to P "
              "(`-` for stdout).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="P", help="At the end, write the bench's HTML report to P "
              "(as `harness report BENCH_ID --html P`).")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="P", help="At the end, write the JUnit XML report to P.")
@click.option("--md", "md_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="P", help="At the end, write the Markdown summary to P.")
def bench_cmd(recipes: str | None, selector: str | None, repeat: int | None,
              warmup: int | None, budget: float | None, baseline: str | None,
              shard: str | None, resume: str | None, config_path: Path | None,
              farm_path: Path | None, db_path: Path | None, logs_dir: Path, lease_wait: float,
              recipes_dirs: tuple[Path, ...], json_path: Path | None,
              html_path: Path | None, junit_path: Path | None, md_path: Path | None) -> None:
    """Bench every eligible phone x recipe: fair, judged, stored, gated against a baseline."""
    from harness.bench.config import BenchConfig, Overrides, load_config, with_overrides
    from harness.bench.engine import Bench, BenchRequest
    from harness.bench.matrix import parse_shard

    config = load_config(config_path) if config_path else BenchConfig()
    names = tuple(n.strip() for n in recipes.split(",") if n.strip()) if recipes else None
    if resume is None:
        config = with_overrides(config, Overrides(names, selector, repeat, warmup, budget,
                                                  baseline))
    request = BenchRequest(config, parse_shard(shard) if shard else None, resume, farm_path,
                           db_path, logs_dir, recipes_dirs, lease_wait_s=lease_wait)
    bench = Bench(request, _events(json_path is not None and str(json_path) == "-"))
    try:
        report = bench.run()
    except KeyboardInterrupt:
        if bench.bench_id:
            err.print(f"[yellow]bench {bench.bench_id} interrupted[/]; finish it with "
                      f"[bold]harness bench --resume {bench.bench_id}[/]", markup=True)
        raise
    data = report.to_dict()
    if json_path is not None:
        from harness.cli.options import emit_json

        if str(json_path) == "-":
            emit_json(data)
        else:
            import json

            json_path.write_text(json.dumps(data, indent=2, default=str))
    if json_path is None or str(json_path) != "-":
        _print_report(data)
    if html_path or junit_path or md_path:
        _write_reports(db_path, report.bench_id, html_path, junit_path, md_path)
    code = exit_code(report, bench.config)
    if code:
        sys.exit(code)


def _write_reports(db_path: Path | None, bench_id: str, html: Path | None,
                   junit: Path | None, md: Path | None) -> None:
    """The reports of the bench that just ended, from what it stored (``harness report``)."""
    from harness.report.write import write_reports
    from harness.results.store import Store

    with Store.open(db_path) as store:
        write_reports(store, bench_id, html=html, junit=junit, md=md)
    for label, path in (("HTML", html), ("JUnit", junit), ("Markdown", md)):
        if path is not None:
            err.print(f"{label} report: {path}")


def exit_code(report: Any, config: Any) -> int:
    fail = config.fail_on
    if fail.regression and report.regressions:
        return EXIT_REGRESSED
    if (fail.failed_run and report.failed_runs) or (fail.lost_phone and report.lost):
        return EXIT_RUN_FAILED
    return 0


def _events(quiet_stdout: bool) -> Any:
    from harness.bench.engine import BenchEvents

    def phase(serial: str, text: str) -> None:
        err.print(f"[bold cyan]>[/] {escape(serial)}: {escape(text)}", markup=True)

    def run(result: Any) -> None:
        colour = "green" if result.validity == "valid" else "yellow"
        what = "warm-up" if result.warmup else "repeat"
        err.print(f"  {escape(result.serial)} {escape(result.series)} {what} "
                  f"{result.repeat_idx + 1}: [{colour}]{result.validity}[/] "
                  f"({escape(result.reason)})", markup=True, highlight=False)

    def warning(text: str) -> None:
        err.print(f"[yellow]warning:[/] {escape(text)}", markup=True)

    return BenchEvents(phase=phase, run=run, warning=warning)


def _print_report(data: dict[str, Any]) -> None:
    from rich.table import Table

    for r in data["rejected"]:
        out.print(f"rejected: {escape(str(r['serial'] or 'every phone'))} x "
                  f"{escape(r['series'])}: {escape(r['reason'])}", highlight=False)
    table = Table("phone", "series", "figure", "n", "median", "IQR", "min", "CV", "stability",
                  "vs baseline", "verdict")
    for s in data["series"]:
        summary, gate = s.get("summary"), s.get("gate")
        table.add_row(
            f"{s['serial']} {s['model']}".strip(), s["series"], f"{s['step']}/{s['metric']}",
            str(summary["n"]) if summary else "0",
            f"{summary['median']:.4g}" if summary else "-",
            f"{summary['iqr']:.3g}" if summary else "-",
            f"{summary['min']:.4g}" if summary else "-",
            f"{summary['robust_cv']:.1%}" if summary else "-",
            summary["verdict"] if summary else "-",
            f"{gate['effect']:+.1%} p={gate['p_value']:.3g}" if gate else "-", s["verdict"])
    out.print(table)
    for s in data["series"]:
        for change in s.get("changes", ()):
            out.print(f"{s['verdict']} {escape(s['serial'])} {escape(s['series'])} "
                      f"{escape(s['step'])}/{escape(s['metric'])}: changed: {escape(change)}",
                      highlight=False)
    for f in data["findings"]:
        colour = "green" if f["kind"] == "improvement" else "red"
        out.print(f"[{colour}]{f['kind']}[/] {escape(f['detail'])}", markup=True)
        for change in f["changes"]:
            out.print(f"  changed: {escape(change)}", highlight=False)
    for serial, why in data["lost"].items():
        out.print(f"[red]lost[/] {escape(serial)}: {escape(why)}", markup=True)
    invalid = [r for r in data["runs"] if r["validity"] not in ("valid", None)]
    for r in invalid:
        out.print(f"[yellow]{r['validity']}[/] run {r['id']} ({escape(str(r['serial']))} "
                  f"{escape(str(r['series']))} #{r['repeat_idx']})", markup=True)
    colour = {"ok": "green", "regressed": "red", "failed": "red"}.get(data["status"], "yellow")
    out.print(f"[{colour}]{data['status']}[/] bench {data['bench_id']}: {len(data['runs'])} "
              f"run(s), {data['failed_runs']} failed, {data['regressions']} regression(s), "
              f"{len(data['lost'])} phone(s) lost", markup=True)


@click.group("results")
def results() -> None:
    """Results databases: merge shards and hosts into one."""


@results.command("merge")
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="The merged database (created, or added to).")
@output_options("Print the rows added per table as JSON.")
def results_merge(inputs: tuple[Path, ...], out_path: Path, output: Output) -> None:
    """Merge result databases into one (idempotent: a run already there is kept once)."""
    from harness.results.merge import merge

    result = merge(inputs, out_path)
    data = {"output": str(result.output), "inputs": [str(p) for p in result.inputs],
            "added": result.added}
    output.emit(data, lambda: out.print(
        f"merged {len(result.inputs)} database(s) into {escape(str(out_path))}: "
        + ", ".join(f"{n} {t}" for t, n in result.added.items()), highlight=False))


COMMANDS = [bench_cmd, results]
