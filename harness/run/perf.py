"""Parse the ``[Perf]`` lines the pipeline binaries print, and name their figures stably.

Formats seen in the seed (seed-facts.md)::

    [Perf] steps=20 total_s=9.19277 s/step=0.459639      -> steps, total_s, s/step
    [Perf] CLIP ms=812.3                                   -> clip.ms
    [Perf] UNet loop_s=64.3368 s/step=3.21684              -> unet.loop_s, unet.s/step
    [Perf] init_s=65.6627  /  [Perf] UNet init_s=65.6627   -> init_s  /  unet.init_s
    [Perf] iters=1 warmup=0 s/it=1.61393                   -> iters, warmup, s/it

Parsing rules (:func:`parse_perf_line`):

- ``[Perf]`` may appear anywhere in a line (binaries and logcat prefix timestamps); the text
  before it is ignored. Lines without ``[Perf]`` are not perf lines (``None``).
- The words before the first ``key=value`` pair form a label; it is lower-cased, a trailing
  ``:`` of a word is dropped (``UNet:``), its words are joined with ``.``, and it prefixes
  every key of the line (``UNet loop_s`` -> ``unet.loop_s``). Keys are lower-cased in metric
  names (``Loop_S`` -> ``loop_s``); unknown keys are kept.
- Values are numbers: ints stay ints in :class:`PerfRecord` (``steps=20``), everything is a
  float in the flat metrics map. ``nan``/``inf`` are accepted (a broken run prints them and
  that is worth keeping).
- A trailing ``,`` or ``;`` after a pair is tolerated; CR/LF endings are stripped.
- Anything else (no pairs, an empty or non-numeric value, a word after the pairs, a key
  repeated within the line) makes the line malformed: it is reported as a :class:`PerfIssue`
  and contributes nothing.
- When a metric appears on several lines (one line per iteration, say), the flat map keeps the
  last value; every line stays available in ``records``.

Naming rule (:func:`expect_metrics`): binaries we did not write label the same figure
differently (``[Perf] init_s=`` from one, ``[Perf] UNet init_s=`` from another; ``ms`` from
one, ``s`` from another). A recipe step declares the metrics it expects (``perf:``), and each
declared name is the figure's one stored name:

1. a printed metric of exactly the declared name is taken as it is;
2. otherwise a printed metric is the same figure when its key equals the declared key
   (case-insensitive) and the label words of one are a subset of the other's (a label word
   added or dropped: ``unet.init_s`` for ``init_s``, ``loop_s`` for ``unet.loop_s``,
   ``vae.decode.s/it`` for ``vae.s/it``), or when the keys differ only in their time unit
   (``s``, ``ms``, ``us`` as the whole key, after ``_``, or before ``/``: ``init_ms`` for
   ``init_s``, ``ms/step`` for ``s/step``); its value is converted to the declared unit;
3. exactly one such printed metric is renamed to the declared name; none, or several (which
   one would be a guess), leaves the declared metric missing, which the run reports as a
   warning and a stored verdict. Printed metrics nobody declared keep their printed names.

In a declared name the key is what follows the last ``.`` (``unet.s/step`` -> label
``unet``, key ``s/step``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

PERF_TAG = "[Perf]"
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_./%-]*\Z")
_LABEL_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_INT_RE = re.compile(r"[+-]?\d+\Z")


@dataclass(frozen=True)
class PerfRecord:
    """One well-formed ``[Perf]`` line."""

    line_no: int
    label: str  # lower-cased, words joined by "."; "" when the line has no label
    values: dict[str, int | float]  # keys as printed, in order
    line: str

    def metric_name(self, key: str) -> str:
        return f"{self.label}.{key.lower()}" if self.label else key.lower()

    @property
    def metrics(self) -> dict[str, float]:
        """The line's figures under their full metric names (``unet.loop_s``)."""
        return {self.metric_name(k): float(v) for k, v in self.values.items()}


@dataclass(frozen=True)
class PerfIssue:
    """A line that carries ``[Perf]`` but could not be parsed; it is skipped."""

    line_no: int
    line: str
    reason: str


@dataclass(frozen=True)
class PerfReport:
    """Everything parsed from one output: flat metrics, the lines, the problems."""

    metrics: dict[str, float]
    records: list[PerfRecord]
    issues: list[PerfIssue]


def _number(text: str) -> int | float | None:
    if _INT_RE.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return None


def _split_pair(word: str) -> tuple[str, str] | None:
    if "=" not in word:
        return None
    key, _, value = word.partition("=")
    return key, value.rstrip(",;")


def parse_perf_line(line: str, line_no: int = 0) -> PerfRecord | PerfIssue | None:
    """Parse one line: a record, an issue (malformed), or ``None`` (not a perf line)."""
    text = line.rstrip("\r\n")
    at = text.find(PERF_TAG)
    if at < 0:
        return None
    words = text[at + len(PERF_TAG):].split()
    label_words: list[str] = []
    values: dict[str, int | float] = {}
    for word in words:
        pair = _split_pair(word)
        if pair is None:
            if values:
                return PerfIssue(line_no, text, f"unexpected word {word!r} after the figures")
            word = word.removesuffix(":")
            if not _LABEL_WORD_RE.match(word):
                return PerfIssue(line_no, text, f"unexpected label word {word!r}")
            label_words.append(word.lower())
            continue
        key, raw = pair
        if not _KEY_RE.match(key):
            return PerfIssue(line_no, text, f"bad key {key!r}")
        if not raw:
            return PerfIssue(line_no, text, f"{key}= has no value")
        value = _number(raw)
        if value is None:
            return PerfIssue(line_no, text, f"{key}={raw} is not a number")
        if key.lower() in (k.lower() for k in values):
            return PerfIssue(line_no, text, f"{key} appears twice")
        values[key] = value
    if not values:
        return PerfIssue(line_no, text, "no key=value figures")
    return PerfRecord(line_no, ".".join(label_words), values, text)


@dataclass
class PerfCollector:
    """Feed lines as they arrive (streaming); ask for the :class:`PerfReport` at any time."""

    records: list[PerfRecord] = field(default_factory=list)
    issues: list[PerfIssue] = field(default_factory=list)
    lines_seen: int = 0

    def feed_line(self, line: str) -> PerfRecord | PerfIssue | None:
        self.lines_seen += 1
        parsed = parse_perf_line(line, self.lines_seen)
        if isinstance(parsed, PerfRecord):
            self.records.append(parsed)
        elif isinstance(parsed, PerfIssue):
            self.issues.append(parsed)
        return parsed

    def report(self) -> PerfReport:
        metrics: dict[str, float] = {}
        for record in self.records:
            metrics.update(record.metrics)
        return PerfReport(metrics, list(self.records), list(self.issues))


def parse_perf(text: str) -> PerfReport:
    """Parse a whole output (any mix of LF and CRLF line endings). Line numbers start at 1."""
    collector = PerfCollector()
    for line in text.splitlines():
        collector.feed_line(line)
    return collector.report()


# ---- stable names for declared metrics ---------------------------------------------------

_TIME_UNITS_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_UNIT_KEY_RE = re.compile(r"^(?:(?P<stem>.+)_)?(?P<unit>s|ms|us)(?P<per>/.+)?\Z")


@dataclass(frozen=True)
class MetricCheck:
    """Printed metrics under their stable names, and what was declared but not printed."""

    metrics: dict[str, float]
    renamed: dict[str, str]  # declared name -> printed name it was found under
    missing: list[str]  # declared names not printed
    ambiguous: dict[str, list[str]]  # declared name -> several printed candidates


def _split(name: str) -> tuple[frozenset[str], str]:
    label, _, key = name.rpartition(".")
    return frozenset(w for w in label.split(".") if w), key.lower()


def unit_factor(printed_key: str, declared_key: str) -> float | None:
    """The factor that turns a value of ``printed_key`` into ``declared_key``'s unit, when
    both name the same quantity (1.0 for equal keys); None when they differ."""
    if printed_key == declared_key:
        return 1.0
    a, b = _UNIT_KEY_RE.match(printed_key), _UNIT_KEY_RE.match(declared_key)
    if a is None or b is None or (a["stem"], a["per"]) != (b["stem"], b["per"]):
        return None
    return _TIME_UNITS_S[a["unit"]] / _TIME_UNITS_S[b["unit"]]


def _same_figure(printed: str, declared: str) -> float | None:
    p_label, p_key = _split(printed)
    d_label, d_key = _split(declared)
    if not (p_label <= d_label or d_label <= p_label):
        return None
    return unit_factor(p_key, d_key)


def expect_metrics(metrics: dict[str, float], declared: Sequence[str]) -> MetricCheck:
    """Rename printed ``metrics`` to the ``declared`` names by the naming rule above."""
    result = dict(metrics)
    renamed: dict[str, str] = {}
    missing: list[str] = []
    ambiguous: dict[str, list[str]] = {}
    wanted = {name.lower() for name in declared}
    for name in declared:
        if name in result:
            continue
        found = [(p, f) for p in result if p not in wanted and p not in renamed.values()
                 and (f := _same_figure(p, name)) is not None]
        if len(found) == 1:
            printed, factor = found[0]
            result[name] = result.pop(printed) * factor
            renamed[name] = printed
        else:
            missing.append(name)
            if found:
                ambiguous[name] = sorted(p for p, _ in found)
    return MetricCheck(result, renamed, missing, ambiguous)
