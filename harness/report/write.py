"""Write a bench's (or a run's) reports to files: what ``harness report``, ``harness runs
show --html`` and ``harness bench --html/--junit/--md`` call.

Each file is written whole to a temporary name beside it, then renamed into place, so a
CI job or a browser never reads half a report; missing parent folders are made.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.report.canonical import render_json
from harness.report.collect import collect_bench, collect_run, resolve_bench
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.report.model import Report
from harness.results.store import Store


@dataclass(frozen=True)
class Written:
    """What :func:`write_reports` wrote: format -> (path, bytes), and the report itself."""

    report: Report
    files: dict[str, tuple[Path, int]] = field(default_factory=dict)


def write_text(path: Path, text: str) -> int:
    """Write ``text`` to ``path`` atomically (temporary file + rename); return its bytes."""
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def render_all(report: Report, *, html: bool = False, junit: bool = False, md: bool = False,
               json: bool = False, html_path: str | None = None) -> dict[str, str]:
    """The asked formats as text, by name (``html``, ``junit``, ``md``, ``json``)."""
    texts: dict[str, str] = {}
    if html:
        from harness.report.html import render_html  # jinja2 + matplotlib: only when asked

        texts["html"] = render_html(report)
    if junit:
        texts["junit"] = render_junit(report)
    if md:
        texts["md"] = render_markdown(report, html_path=html_path)
    if json:
        texts["json"] = render_json(report)
    return texts


def write_report(report: Report, *, html: Path | None = None, junit: Path | None = None,
                 md: Path | None = None, json: Path | None = None) -> Written:
    """Write ``report`` in each format given a path."""
    paths = {"html": html, "junit": junit, "md": md, "json": json}
    texts = render_all(report, html=html is not None, junit=junit is not None,
                       md=md is not None, json=json is not None,
                       html_path=str(html) if html else None)
    written = Written(report)
    for name, text in texts.items():
        path = paths[name]
        assert path is not None
        written.files[name] = (path, write_text(path, text))
    return written


def write_reports(store: Store, bench_id: str | None = None, *, html: Path | None = None,
                  junit: Path | None = None, md: Path | None = None,
                  json: Path | None = None, now: float | None = None) -> Written:
    """Collect the report of bench ``bench_id`` (a unique prefix; None: the newest) and
    write each format given a path. With an empty database the report says so."""
    report = collect_bench(store, resolve_bench(store, bench_id), now=now)
    return write_report(report, html=html, junit=junit, md=md, json=json)


def write_run_report(store: Store, run_id: str, *, html: Path | None = None,
                     json: Path | None = None, now: float | None = None) -> Written:
    """The one-run report (outputs, telemetry, steps, logs) of ``run_id``."""
    return write_report(collect_run(store, run_id, now=now), html=html, json=json)


def write_repro_html(html: Path, *, sweep: Path | None = None, replay: Path | None = None,
                     store: Store | None = None, now: float | None = None) -> Written:
    """The page of a sweep folder (its ``sweep.json``) or of a replay's JSON at ``html``."""
    import time

    from harness import __version__
    from harness.report.html import render_repro_html
    from harness.report.repro import load_replay, load_sweep

    page = render_repro_html(
        sweep=load_sweep(sweep) if sweep is not None else None,
        replay=load_replay(replay, store) if replay is not None else None,
        harness_version=__version__, generated_at=time.time() if now is None else now)
    empty = Report(title="", generated_at=0.0, harness_version=__version__, bench=None)
    return Written(empty, {"html": (html, write_text(html, page))})
