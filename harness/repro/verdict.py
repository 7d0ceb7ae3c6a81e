"""What a run showed, in one word that sweeps and bisection compare: the detectors' verdicts.

Read from the runner's own summary (:class:`harness.run.runner.RunSummary`), never from what
a binary printed: exit status 137 or a low-memory-killer diagnosis is ``oom``; an output the
colour-block detector (:mod:`harness.run.blocks`) flagged is ``blocks``; NaN values counted
when the output was converted (:mod:`harness.run.images`) are ``nan``; another failed step is
``failed``; a phone that went away (no exit status, or the run could not start because the
phone is gone) is ``lost`` (a bisection "skip"); otherwise ``clean``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.results.store import RunDetail
from harness.run.runner import RunSummary, StepSummary

KINDS = ("clean", "blocks", "nan", "oom", "failed", "lost")
OOM_RE = re.compile(r"low-memory killer|SIGKILL|out of memory|exit 137", re.I)
BLOCKS_RE = re.compile(r"^(?P<where>[\w-]+/[\w.-]+): .*colour blocks over (?P<pct>[\d.]+) %")
NAN_RE = re.compile(r"^(?P<where>[\w-]+/[\w.-]+): (?P<n>\d+) NaN values")


@dataclass(frozen=True)
class RunVerdict:
    """One run, as sweeps and bisection see it."""

    kind: str  # one of KINDS
    detail: str  # e.g. "vae/image colour blocks 9.9 %", "unet: killed by SIGKILL ..."
    run_id: str | None
    seconds: float | None  # the steps' own time on the phone (sum), None if a step failed
    metrics: dict[str, float]  # "step.name" -> value
    image: str | None = None  # the last image output's PNG
    blocks_pct: float | None = None

    @property
    def key(self) -> str:
        """What two runs must share to count as the same behaviour."""
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lost(reason: str) -> RunVerdict:
    return RunVerdict("lost", reason, None, None, {})


def _image(summary: RunSummary) -> str | None:
    found = None
    for step in summary.steps:
        for name, png in step.outputs.items():
            if not name.endswith(".blocks"):
                found = png
    return found


def classify(summary: RunSummary) -> RunVerdict:
    """The verdict of one finished run."""
    metrics = {f"{s.name}.{k}": v for s in summary.steps for k, v in s.metrics.items()}
    image = _image(summary)
    failed = next((s for s in summary.steps if s.exit_code != 0), None)
    if failed is not None:
        why = failed.diagnosis or summary.diagnosis or "failed"
        detail = f"{failed.name}: {why}"
        if failed.exit_code == 137 or OOM_RE.search(why):
            return RunVerdict("oom", detail, summary.run_id, None, metrics, image)
        if failed.exit_code is None and "offline" in why:
            return RunVerdict("lost", detail, summary.run_id, None, metrics, image)
        return RunVerdict("failed", detail, summary.run_id, None, metrics, image)
    if summary.status != "ok":
        return RunVerdict("failed", summary.diagnosis or summary.status, summary.run_id, None,
                          metrics, image)
    seconds = sum(s.seconds for s in summary.steps)
    nans = [m for v in summary.verdicts if (m := NAN_RE.match(v))]
    if nans:
        detail = ", ".join(f"{m['where']} {m['n']} NaN" for m in nans)
        return RunVerdict("nan", detail, summary.run_id, seconds, metrics, image)
    blocks = [m for v in summary.verdicts if (m := BLOCKS_RE.match(v))]
    if blocks:
        pct = max(float(m["pct"]) for m in blocks)
        detail = ", ".join(f"{m['where']} colour blocks {m['pct']} %" for m in blocks)
        return RunVerdict("blocks", detail, summary.run_id, seconds, metrics, image, pct)
    return RunVerdict("clean", "", summary.run_id, seconds, metrics, image)


def summary_of(detail: RunDetail) -> RunSummary:
    """A stored run as the runner's summary (what :func:`classify` reads)."""
    run = detail.run
    steps = []
    for step in detail.steps:
        metrics = {m.name: m.value for m in detail.metrics if m.step == step.name}
        outputs = {o.name: o.png_path for o in detail.outputs
                   if o.step == step.name and o.png_path}
        steps.append(StepSummary(step.name, step.exit_code, step.seconds or 0.0, metrics,
                                 step.diagnosis, outputs))
    status = run.status if run.status in ("ok", "failed", "interrupted") else "failed"
    return RunSummary(run.id, run.recipe, run.serial or "", status, Path(run.run_dir or "."),
                      steps, run.diagnosis, (run.verdict or "").splitlines(),
                      run.seconds or 0.0, run.temps_before or {}, run.temps_after or {})


@dataclass(frozen=True)
class CellSummary:
    """Several repeats of one configuration."""

    kind: str  # the repeats' common kind, "mixed", or "lost" when none resolved
    counts: dict[str, int]
    seconds_median: float | None

    def label(self) -> str:
        resolved = sum(n for k, n in self.counts.items() if k != "lost")
        if self.kind == "mixed":
            return " / ".join(f"{k} {n}" for k, n in sorted(self.counts.items()))
        if resolved > 1:
            return f"{self.kind} {self.counts.get(self.kind, 0)}/{resolved}"
        return self.kind


def summarize(verdicts: Sequence[RunVerdict]) -> CellSummary:
    counts = Counter(v.kind for v in verdicts)
    resolved = {k: n for k, n in counts.items() if k != "lost"}
    kind = "lost" if not resolved else next(iter(resolved)) if len(resolved) == 1 else "mixed"
    times = sorted(v.seconds for v in verdicts if v.seconds is not None)
    median = None
    if times:
        mid = len(times) // 2
        median = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
    return CellSummary(kind, dict(counts), median)


__all__ = ["KINDS", "CellSummary", "RunVerdict", "classify", "lost", "summarize", "summary_of"]
