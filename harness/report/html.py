"""The HTML report: one self-contained file (inline CSS, inline SVG plots, thumbnails as
``data:`` URIs, a few lines of JS to sort tables), rendered by autoescaped Jinja2 templates
(``templates/``).

Nothing in the page asks for anything: its Content-Security-Policy (``default-src 'none'``,
images only from ``data:``) makes the browser refuse any request a future template might
add by mistake, and the browser test checks that none is made. Every string from the
database is escaped by Jinja2; the only markup passed through unescaped is the SVG that
matplotlib wrote (which escapes the text it draws).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from harness.report import conditions, fmt
from harness.report.model import Finding, Report, RunView, Series
from harness.report.plots import timeline_svg, trend_svg
from harness.report.repro import ReplayView, SweepView
from harness.report.thumbs import thumbnail_uri

LOG_LINES = 40  # lines of a step's stdout/stderr tail shown in the report
KIND_ORDER = {"regression": 0, "quality": 1, "improvement": 2}


def _tail(text: str | None, lines: int = LOG_LINES) -> str:
    kept = (text or "").rstrip("\n").splitlines()
    return "\n".join(kept[-lines:])


def _pairs(value: object) -> str:
    """A JSON value as ``key value; key: {k value, ...}`` words (run conditions)."""
    if isinstance(value, dict):
        inner = ", ".join(f"{k} {_pairs(v)}" for k, v in sorted(value.items()))
        return inner if inner else "–"
    if isinstance(value, list | tuple):
        return ", ".join(_pairs(v) for v in value) or "–"
    if isinstance(value, float):
        return fmt.num(value, 5)
    return "–" if value is None else str(value)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("harness.report", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=fmt.when, num=fmt.num, pct=fmt.pct, pvalue=fmt.pvalue,
                       tail=_tail, gb=fmt.gb, ghz=fmt.ghz, pairs=_pairs,
                       conditions=conditions.describe)
    return env


@dataclass(frozen=True)
class Picture:
    label: str
    uri: str | None
    overlay_uri: str | None
    path: str | None


@dataclass(frozen=True)
class RunExtras:
    """What the template shows of a run beyond its view: pictures and the timeline plot."""

    pictures: tuple[Picture, ...]
    timeline: Markup | None
    timeline_of: str | None = None  # the run of the same phone and recipe whose plot is drawn


def plotted_runs(report: Report) -> dict[tuple[str | None, str], str]:
    """Which run of each phone x recipe gets a timeline plot drawn: each failed and invalid
    run gets its own; of the rest, the first measured valid run stands for its phone and
    recipe (a plot costs ~0.3 s; all of a night's would be most of a report's time)."""
    chosen: dict[tuple[str | None, str], str] = {}
    for run in report.runs:
        if run.id in report.timelines and not (run.warmup or run.failed or run.invalid):
            chosen.setdefault((run.serial, run.recipe), run.id)
    return chosen


def _run_extras(report: Report, run: RunView, thumbnails: bool,
                typical: dict[tuple[str | None, str], str]) -> RunExtras:
    pictures = tuple(
        Picture(f"{o.step}/{o.name}", thumbnail_uri(o.png_path) if thumbnails else None,
                thumbnail_uri(o.overlay_path) if thumbnails and o.overlay_path else None,
                o.png_path)
        for o in run.outputs if o.kind == "image" or o.png_path)
    timeline = report.timelines.get(run.id)
    stand_in = typical.get((run.serial, run.recipe))
    if not timeline:
        return RunExtras(pictures, None)
    if len(report.runs) > 1 and not (run.failed or run.invalid) and stand_in != run.id:
        return RunExtras(pictures, None, stand_in)
    svg = _svg_markup(timeline_svg(timeline, [s.name for s in run.steps], salt=f"t-{run.id}"))
    return RunExtras(pictures, svg)


def _svg_markup(svg: str) -> Markup:
    """matplotlib's SVG, passed through unescaped: matplotlib escapes every text it writes
    (recipe names and serials in titles included; the escaping tests check it)."""
    return Markup(svg)  # noqa: S704  # markup made by matplotlib, not by a string we hold


def _series_order(report: Report) -> list[Series]:
    """Series with a finding first (in the findings' order), then those with a change
    point, then the rest, each by label."""
    flagged = [f.key for f in _findings(report)]
    return sorted(report.series, key=lambda s: (
        flagged.index(s.key) if s.key in flagged else len(flagged),
        not s.change_points, s.key.label))


def _findings(report: Report) -> list[Finding]:
    return sorted(report.findings, key=lambda f: (KIND_ORDER.get(f.kind, 9),
                                                  -abs(f.relative_change or 0.0)))


def render_html(report: Report, *, thumbnails: bool = True) -> str:
    """The report as one HTML page (``thumbnails=False``: no pictures, for speed in tests)."""
    series = _series_order(report)
    plots = {s.key.anchor: _svg_markup(trend_svg(s, small=not s.change_points))
             for s in series if s.nights}
    typical = plotted_runs(report)
    extras = {r.id: _run_extras(report, r, thumbnails, typical) for r in report.runs}
    template = environment().get_template("report.html.j2")
    return template.render(report=report, findings=_findings(report), series=series,
                           plots=plots, extras=extras, single_run=report.bench is None
                           and len(report.runs) == 1)


def render_repro_html(*, sweep: SweepView | None = None, replay: ReplayView | None = None,
                      harness_version: str, generated_at: float) -> str:
    """A sweep's contact sheet and cells, or a replay's two sides next to each other."""
    if (sweep is None) == (replay is None):
        raise ValueError("one of sweep and replay")
    title = (f"harness sweep: {sweep.recipe} on {sweep.serial}" if sweep else
             f"harness replay: {replay.original.label} vs {replay.replay.label}"
             if replay else "")
    return environment().get_template("repro.html.j2").render(
        sweep=sweep, replay=replay, title=title, harness_version=harness_version,
        generated_at=generated_at)
