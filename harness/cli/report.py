"""``harness report``: a bench's HTML page, JUnit XML, Markdown summary and JSON."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import db_option
from harness.console import err
from harness.errors import UsageError

_PATH = click.Path(dir_okay=False, path_type=Path)


def print_written(files: dict[str, tuple[Path, int]]) -> None:
    for name, (path, size) in files.items():
        err.print(f"wrote {name}: {path} ({size / 1e6:.2f} MB)" if size >= 100_000 else
                  f"wrote {name}: {path} ({size:,} bytes)")


@click.command("report")
@click.argument("bench_id", required=False)
@click.option("--last", is_flag=True, help="The newest bench (the default without BENCH_ID).")
@click.option("--html", "html", type=_PATH, default=None,
              help="Write the self-contained HTML report here (works offline).")
@click.option("--junit", "junit", type=_PATH, default=None,
              help="Write JUnit XML here (a test case per phone x recipe and per metric).")
@click.option("--md", "md", type=_PATH, default=None,
              help="Write the Markdown summary here (chat, $GITHUB_STEP_SUMMARY).")
@click.option("--json", "json_path", type=_PATH, default=None,
              help="Write the canonical JSON here ('-': to stdout); schema in "
                   "harness/report/SCHEMA.md.")
@click.option("--sweep", "sweep", type=click.Path(path_type=Path), default=None,
              help="Instead of a bench: the page of a `harness repro sweep` folder (its "
                   "contact sheet and cells); needs --html.")
@click.option("--replay", "replay", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Instead of a bench: the side-by-side page of a replay, "
              "from the JSON `harness replay --json` printed; needs --html.")
@db_option
def report(bench_id: str | None, last: bool, html: Path | None, junit: Path | None,
           md: Path | None, json_path: Path | None, sweep: Path | None, replay: Path | None,
           db_path: Path | None) -> None:
    """Report one bench (a unique prefix of its id, or --last): regressions, failures,
    invalid runs, series over nights, phones and runs. Without an output option, print
    the Markdown summary. With --sweep or --replay: that page instead."""
    from harness.report.collect import collect_bench, resolve_bench
    from harness.report.write import render_all, write_report, write_repro_html
    from harness.results.store import Store

    if bench_id and last:
        raise UsageError("give BENCH_ID or --last, not both")
    if sweep is not None or replay is not None:
        if sweep is not None and replay is not None:
            raise UsageError("give --sweep or --replay, not both")
        if bench_id or last or junit or md or json_path or html is None:
            raise UsageError("--sweep and --replay make an HTML page only: give --html P "
                             "and no bench")
        with Store.open(db_path) as store:
            print_written(write_repro_html(html, sweep=sweep, replay=replay,
                                           store=store).files)
        return
    to_stdout = json_path is not None and str(json_path) == "-"
    with Store.open(db_path) as store:
        collected = collect_bench(store, resolve_bench(store, bench_id))
    written = write_report(collected, html=html, junit=junit, md=md,
                           json=None if to_stdout else json_path)
    print_written(written.files)
    if to_stdout:
        click.echo(render_all(collected, json=True)["json"], nl=False)  # verbatim, no rich
    elif not written.files:
        click.echo(render_all(collected, md=True)["md"], nl=False)


COMMANDS: list[click.Command] = [report]
