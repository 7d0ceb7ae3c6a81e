"""Plots as inline SVG (matplotlib, text kept as text), for the HTML report.

matplotlib is imported here, inside the functions, so that ``harness --help`` and every
command but the report never load it (~0.3 s). No pyplot: each plot is its own
:class:`matplotlib.figure.Figure`, so no global figure state is shared or leaked.

Each SVG is made to live inside one HTML page next to others: ``svg.fonttype: none`` keeps
labels as ``<text>`` (selectable, searchable, small), ``svg.hashsalt`` is the plot's own id
so the ids matplotlib gives clip paths and markers differ between two plots, the
XML prolog is dropped and the fixed width/height give way to the viewBox (CSS sizes it),
and every id gets the plot's name in front (:func:`_own_ids`).
"""

from __future__ import annotations

import io
import math
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.report.model import Series, TimelineData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DAY_S = 86_400.0
MAX_TEMP_LINES = 4  # thermal zones drawn: the hottest ones (plus the battery)
MAX_POINTS = 240  # per line of a timeline: more cannot be seen at this size, only weighed
TREND_SIZE_IN = (7.2, 2.4)  # a series with a change: the page's full width
SMALL_TREND_SIZE_IN = (4.8, 2.2)  # the others, two to a row: same text size on the page
TIMELINE_SIZE_IN = (7.2, 4.6)
# (Any: matplotlib types rc keys as Literals.) text.parse_math off: a "$" in a recipe name
# is text, not TeX; DejaVu Sans ships with matplotlib: the same layout everywhere.
_RC: Any = {"svg.fonttype": "none", "text.parse_math": False, "font.size": 8,
            "axes.titlesize": 9, "axes.labelsize": 8, "axes.spines.top": False,
            "axes.spines.right": False, "path.simplify": True, "font.family": "DejaVu Sans"}
VALID_COLOUR = "#3465a4"
MEDIAN_COLOUR = "#204a87"
INVALID_COLOUR = "#cc0000"
REGRESSION_COLOUR = "#cc0000"
IMPROVEMENT_COLOUR = "#4e9a06"
PHASE_COLOURS = ("#eeeeec", "#fcf4dc")


def _svg(fig: Figure, salt: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = _own_ids(buf.getvalue(), salt)
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF
    # viewBox keeps the aspect ratio; the page's CSS gives the width.
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', text, count=1)
    return text.replace("<svg", '<svg role="img" class="plot"', 1)


def _own_ids(svg: str, salt: str) -> str:
    """Prefix every id of one plot (and each reference to it) with the plot's own name:
    matplotlib numbers its groups ``figure_1``, ``axes_1``... afresh in every SVG, and
    several plots share one HTML page, where ids must be unique."""
    prefix = "".join(c if c.isalnum() else "-" for c in salt)
    ids = set(re.findall(r'\sid="([^"]+)"', svg))
    if not ids:
        return svg
    names = "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
    svg = re.sub(rf'(\sid=")({names})"', rf'\1{prefix}-\2"', svg)
    return re.sub(rf'#({names})([")])', rf'#{prefix}-\1\2', svg)


def _figure(size: tuple[float, float], **margins: float) -> Figure:
    """A figure with fixed margins: a layout engine (or ``bbox_inches="tight"``) draws the
    figure once more to measure it, doubling the time of a report of many plots."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=96)
    fig.subplots_adjust(**margins)
    return fig


def trend_svg(series: Series, *, salt: str | None = None, small: bool = False) -> str:
    """A series over nights: each valid run a dot, the night's median a line, invalid runs
    apart (red crosses), change points as dashed lines with their %. ``small``: half the
    page's width, no legend (the page says what the marks mean once, above the plots)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        if small:
            fig = _figure(SMALL_TREND_SIZE_IN, left=0.14, right=0.95, top=0.86, bottom=0.13)
        else:
            fig = _figure(TREND_SIZE_IN, left=0.1, right=0.96, top=0.86, bottom=0.12)
        ax = fig.add_subplot()
        _trend(ax, series, legend=not small, title_chars=48 if small else 90)
        return _svg(fig, salt or series.key.anchor)


def _day_label(x: float, _pos: object = None) -> str:
    return time.strftime("%m-%d", time.gmtime(x * DAY_S))


def _short(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _trend(ax: Axes, series: Series, *, legend: bool, title_chars: int) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    days = [n.started_at / DAY_S for n in series.nights]  # x: days since 1970 (UTC)
    xs = [d for d, n in zip(days, series.nights, strict=True) for _ in n.values]
    ys = [v for n in series.nights for v in n.values]
    ax.scatter(xs, ys, s=6, color=VALID_COLOUR, alpha=0.45, linewidths=0, label="valid run")
    med = [(d, _median(n.values)) for d, n in zip(days, series.nights, strict=True) if n.values]
    if med:
        ax.plot([m[0] for m in med], [m[1] for m in med], color=MEDIAN_COLOUR, lw=1.2,
                label="night median")
    bad = [(d, p.value) for d, n in zip(days, series.nights, strict=True) for p in n.invalid
           if p.value is not None]
    if bad:
        ax.scatter([b[0] for b in bad], [b[1] for b in bad], marker="x", s=14,
                   color=INVALID_COLOUR, linewidths=0.9, label="invalid run (not counted)")
    for cp in series.change_points:
        if 0 <= cp.index < len(days):
            colour = REGRESSION_COLOUR if cp.direction == "regression" else IMPROVEMENT_COLOUR
            ax.axvline(days[cp.index], color=colour, ls="--", lw=1)
            ax.annotate(f"{cp.relative_change:+.1%}", (days[cp.index], 1.0),
                        xycoords=("data", "axes fraction"), xytext=(3, -9),
                        textcoords="offset points", color=colour, fontsize=8)
    ax.set_ylabel(series.key.metric)
    ax.set_title(_short(f"{series.key.serial} · {series.key.recipe}", title_chars), loc="left")
    ax.grid(True, axis="y", color="#dddddd", lw=0.5)
    if legend:  # above the plot, right of the title: never over the data or a label
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False,
                  ncols=3, borderaxespad=0.2, handletextpad=0.3, columnspacing=0.8)
    ax.margins(y=0.25)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(_day_label))


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def decimate(points: Sequence[tuple[float, float]], limit: int = MAX_POINTS
             ) -> list[tuple[float, float]]:
    """At most ``limit`` points, keeping each bucket's minimum and maximum (peaks survive)."""
    if len(points) <= limit:
        return list(points)
    buckets = max(1, limit // 2)
    size = len(points) / buckets
    kept: list[tuple[float, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size):int((b + 1) * size)]
        if chunk:
            lo = min(chunk, key=lambda p: p[1])
            hi = max(chunk, key=lambda p: p[1])
            kept.extend(sorted({lo, hi}))
    return kept


def _offsets(timeline: TimelineData, order: Sequence[str]) -> dict[str, float]:
    """Each step's start on one time axis: the steps one after another, in plan order."""
    start, offsets = 0.0, {}
    for step in [s for s in order if s in timeline] + sorted(set(timeline) - set(order)):
        offsets[step] = start
        ends = [pts[-1][0] for pts in timeline[step].values() if pts]
        start += max(ends, default=0.0)
    return offsets


def _line(ax: Axes, timeline: TimelineData, offsets: dict[str, float], name: str,
          scale: float, **style: Any) -> bool:
    """One line for ``name`` across every step (a gap between steps), on the common axis."""
    xs: list[float] = []
    ys: list[float] = []
    for step, off in offsets.items():
        pts = decimate(timeline[step].get(name, []))
        if pts:
            if xs:
                xs.append(math.nan)
                ys.append(math.nan)
            xs.extend(off + t for t, _ in pts)
            ys.extend(v * scale for _, v in pts)
    if xs:
        ax.plot(xs, ys, **style)
    return bool(xs)


def _phases(axes: Sequence[Axes], timeline: TimelineData, offsets: dict[str, float]) -> None:
    steps = list(offsets)
    for i, step in enumerate(steps):
        end = offsets[steps[i + 1]] if i + 1 < len(steps) else max(
            (offsets[step] + pts[-1][0] for pts in timeline[step].values() if pts),
            default=offsets[step])
        for ax in axes:
            ax.axvspan(offsets[step], end, color=PHASE_COLOURS[i % 2], zorder=0, lw=0)
        axes[0].annotate(step, ((offsets[step] + end) / 2, 1.0), xycoords=("data",
                         "axes fraction"), ha="center", va="bottom", fontsize=8)


def _temperatures(timeline: TimelineData, names: Sequence[str]) -> list[str]:
    """The zones worth a line: the battery and the hottest few (a phone has dozens)."""
    peak = {n: max((v for step in timeline.values() for _, v in step.get(n, [])),
                   default=-math.inf) for n in names if n.startswith("temp_")}
    hottest = sorted(peak, key=lambda n: -peak[n])[:MAX_TEMP_LINES]
    battery = [n for n in peak if "batt" in n and n not in hottest][:1]
    return sorted(hottest + battery)


def _same_x(axes: Sequence[Axes]) -> None:
    from matplotlib.ticker import MaxNLocator, NullLocator

    lows, highs = zip(*(ax.get_xlim() for ax in axes), strict=True)
    for i, ax in enumerate(axes):
        ax.set_xlim(min(lows), max(highs))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=3))
        if i < len(axes) - 1:
            ax.xaxis.set_major_locator(NullLocator())


def timeline_svg(timeline: TimelineData, step_order: Sequence[str], *, salt: str) -> str:
    """A run's telemetry on one time axis, step phases shaded and named: memory (GB), power
    (W), temperatures (°C) and CPU frequencies with their caps (GHz)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(TIMELINE_SIZE_IN, left=0.08, right=0.83, top=0.95, bottom=0.09,
                      hspace=0.18)
        # Not sharex: the upper panels get no x ticks at all (ticks are most of a plot's
        # drawing time), the same limits instead.
        axes = list(fig.subplots(4, 1))
        offsets = _offsets(timeline, step_order)
        _phases(axes, timeline, offsets)
        mem, power, temp, freq = axes
        _line(mem, timeline, offsets, "mem_available_kb", 1 / 1e6, color="#3465a4",
              lw=1, label="MemAvailable")
        _line(mem, timeline, offsets, "rss_kb", 1 / 1e6, color="#75507b", lw=1,
              label="RSS (step)")
        mem.set_ylabel("memory GB")
        _line(power, timeline, offsets, "power_w", 1.0, color="#ce5c00", lw=1, label="power")
        power.set_ylabel("power W")
        names = sorted({n for pts in timeline.values() for n in pts})
        for name in _temperatures(timeline, names):
            _line(temp, timeline, offsets, name, 1.0, lw=1, label=name[5:-2])
        temp.set_ylabel("°C")
        for name in [n for n in names if n.startswith("cpu") and n.endswith("_cur_khz")]:
            _line(freq, timeline, offsets, name, 1 / 1e6, lw=0.8,
                  label=name.removesuffix("_cur_khz"))
        for name in [n for n in names if n.startswith("cpu") and n.endswith("_max_khz")]:
            _line(freq, timeline, offsets, name, 1 / 1e6, lw=1, ls="--",
                  label=name.removesuffix("_max_khz") + " cap")
        freq.set_ylabel("CPU GHz")
        freq.set_xlabel("seconds since the run started")
        _same_x(axes)
        for ax in axes:
            ax.grid(True, axis="y", color="#dddddd", lw=0.5)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7,
                          frameon=False)
        return _svg(fig, salt)
