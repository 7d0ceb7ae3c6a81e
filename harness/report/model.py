"""The report's one model: what every renderer (HTML, JUnit, Markdown, JSON) shows.

:func:`harness.report.collect.collect_bench` fills a :class:`Report` from the store; the JSON
writer dumps it as is (``SCHEMA.md`` documents every field), the others pick from it. Plain
frozen dataclasses of JSON-able values, so ``dataclasses.asdict`` is the canonical form.
The one part kept out of the JSON is :attr:`Report.timelines` (the raw telemetry samples,
stored in the database already; the JSON has their per-run summary instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "harness-report"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SeriesKey:
    """One measured series: a phone (model + serial), a recipe, a metric (``step/name``)."""

    model: str
    serial: str
    recipe: str
    metric: str
    variant: str = ""  # the differing params when a recipe ran with several ("seed=7")

    @property
    def label(self) -> str:
        variant = f" [{self.variant}]" if self.variant else ""
        return f"{self.serial} {self.recipe}{variant} {self.metric}"

    @property
    def anchor(self) -> str:
        """An HTML id safe in any page (letters, digits and dashes), unique per series."""
        raw = f"s-{self.serial}-{self.recipe}-{self.metric}-{self.variant}"
        return "".join(c if c.isalnum() else "-" for c in raw).rstrip("-")


@dataclass(frozen=True)
class InvalidPoint:
    """A run kept out of a series (throttled, hot start, failed...), shown apart."""

    run_id: str
    value: float | None
    reason: str


@dataclass(frozen=True)
class Night:
    """One bench's runs of one series."""

    bench_id: str
    started_at: float
    values: tuple[float, ...]  # valid, measured (not warm-up) runs
    invalid: tuple[InvalidPoint, ...] = ()


@dataclass(frozen=True)
class ChangeMark:
    """A detected change point, by the index of its first night in :attr:`Series.nights`."""

    index: int
    bench_id: str | None
    direction: str  # regression | improvement
    relative_change: float
    p_value: float
    kind: str  # history | nightly
    alerted: bool


@dataclass(frozen=True)
class Summary:
    """A series' valid runs summed up (``harness.bench.series``)."""

    n: int
    median: float
    q1: float
    q3: float
    min: float
    max: float
    cv: float
    robust_cv: float
    stability: str  # stable | noisy
    reason: str = ""


@dataclass(frozen=True)
class Series:
    key: SeriesKey
    nights: tuple[Night, ...]
    change_points: tuple[ChangeMark, ...] = ()
    summary: Summary | None = None


@dataclass(frozen=True)
class Finding:
    """A regression, an improvement or an output-quality change of one series."""

    key: SeriesKey
    kind: str  # regression | improvement | quality
    verdict: str  # what it means, in a few words
    median_before: float | None
    median_after: float | None
    relative_change: float | None
    p_value: float | None
    last_good_bench: str | None
    first_bad_bench: str | None
    changes: tuple[str, ...] = ()  # what changed between good and bad, one line each
    detail: str = ""


@dataclass(frozen=True)
class StepView:
    index: int
    name: str
    exit_code: int | None
    signal: int | None
    seconds: float | None
    diagnosis: str | None
    stdout_tail: str
    stderr_tail: str


@dataclass(frozen=True)
class OutputView:
    step: str
    name: str
    kind: str
    shape: tuple[int, ...]
    png_path: str | None
    overlay_path: str | None  # the colour-block overlay next to the PNG, when there is one
    nan_count: int | None
    inf_count: int | None


@dataclass(frozen=True)
class Telemetry:
    """A run's telemetry in a few numbers (the samples themselves stay in the database)."""

    samples: int = 0
    min_mem_available_kb: float | None = None
    peak_rss_kb: float | None = None
    mean_power_w: float | None = None
    peak_power_w: float | None = None
    max_temp_c: dict[str, float] = field(default_factory=dict)
    min_cap_khz: dict[str, float] = field(default_factory=dict)  # cpu<policy>_max_khz


@dataclass(frozen=True)
class RunView:
    id: str
    serial: str | None
    model: str | None
    recipe: str
    status: str  # running | ok | failed | interrupted | abandoned
    validity: str | None  # valid | throttled | hot-start | noisy | failed (bench runs)
    validity_reason: str | None
    repeat_idx: int | None
    warmup: bool
    started_at: float
    seconds: float | None
    verdicts: tuple[str, ...]
    diagnosis: str | None
    run_dir: str | None
    metrics: dict[str, float]
    steps: tuple[StepView, ...] = ()
    outputs: tuple[OutputView, ...] = ()
    conditions: dict[str, Any] | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "interrupted", "abandoned") or self.validity == "failed"

    @property
    def invalid(self) -> bool:
        return not self.failed and self.validity not in (None, "valid")


@dataclass(frozen=True)
class EventView:
    at: float
    serial: str | None
    recipe: str | None
    kind: str
    detail: dict[str, Any] | None

    @property
    def text(self) -> str:
        """The event's detail in one line (its ``reason``/``message`` when it has one)."""
        if not self.detail:
            return ""
        for word in ("reason", "message", "error"):
            if isinstance(self.detail.get(word), str):
                return str(self.detail[word])
        return ", ".join(f"{k}={v}" for k, v in sorted(self.detail.items()))


@dataclass(frozen=True)
class PhoneRow:
    recipe: str
    metric: str
    n: int
    median: float
    cv: float
    robust_cv: float
    stability: str


@dataclass(frozen=True)
class Phone:
    serial: str
    model: str
    rows: tuple[PhoneRow, ...]
    runs: int
    failed: int
    invalid: int


@dataclass(frozen=True)
class BenchView:
    id: str
    status: str
    started_at: float
    ended_at: float | None
    host: str | None
    harness_version: str | None
    shard: str | None
    baseline: str | None


TimelineData = dict[str, dict[str, list[tuple[float, float]]]]  # step -> name -> [(t, v)]


@dataclass(frozen=True)
class Report:
    """Everything one report shows (see the module docstring)."""

    title: str
    generated_at: float
    harness_version: str
    bench: BenchView | None
    findings: tuple[Finding, ...] = ()
    series: tuple[Series, ...] = ()
    phones: tuple[Phone, ...] = ()
    runs: tuple[RunView, ...] = ()
    events: tuple[EventView, ...] = ()
    notes: tuple[str, ...] = ()  # what the report could not do, in words
    timelines: dict[str, TimelineData] = field(default_factory=dict)  # run id -> samples

    @property
    def regressions(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.kind == "regression")

    @property
    def failed_runs(self) -> tuple[RunView, ...]:
        return tuple(r for r in self.runs if r.failed)

    @property
    def invalid_runs(self) -> tuple[RunView, ...]:
        return tuple(r for r in self.runs if r.invalid)

    @property
    def lost(self) -> tuple[EventView, ...]:
        return tuple(e for e in self.events if e.kind == "lost")

    @property
    def verdict(self) -> str:
        """``regressed`` | ``failed`` | ``ok`` | ``empty``: what the night comes to."""
        if self.regressions:
            return "regressed"
        if self.failed_runs or self.lost:
            return "failed"
        return "ok" if self.runs else "empty"
