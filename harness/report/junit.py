"""JUnit XML for CI systems (Jenkins, GitLab, GitHub Actions test reporters).

The shape Jenkins reads (its xunit plugin's ``junit-10.xsd``; ``tests/data/junit-jenkins.xsd``
restates that structure): ``<testsuites>`` holding one ``<testsuite>`` per phone, each with
``<properties>`` (model, serial, bench) and these test cases, ``classname`` = ``serial.recipe``:

- ``<recipe>: runs`` — one per phone x recipe: a ``<failure type="run-failed">`` naming
  each failed run and its diagnosis; an ``<error type="phone-lost">`` when the phone was
  lost; ``<skipped>`` when every run was invalid (throttled, hot...); invalid runs are
  listed in ``<system-out>``. ``time`` is the runs' total seconds.
- ``<recipe> <metric>`` — one per phone x recipe x metric measured or judged: a
  ``<failure type="regression">`` (or ``type="quality"``) with the finding in one readable
  line as its message and the details as its text; an improvement passes, said in
  ``<system-out>``.

Counts (tests, failures, errors, skipped) are computed, never typed in. Text is escaped by
ElementTree; characters XML 1.0 cannot hold (control bytes from a phone's log) are dropped.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field

from harness.report.fmt import pct, pvalue
from harness.report.model import EventView, Finding, Report, RunView

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: object) -> str:
    return _XML_BAD.sub("", str(value))


@dataclass
class _Case:
    name: str
    classname: str
    time_s: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # type, message, text
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: str | None = None
    out: list[str] = field(default_factory=list)


def finding_message(f: Finding) -> str:
    """A finding in one line: ``unet/unet.s/step regression +8.0 % (1.92 -> 2.07), p 1e-05``."""
    before = "?" if f.median_before is None else f"{f.median_before:.4g}"
    after = "?" if f.median_after is None else f"{f.median_after:.4g}"
    changed = f"; changed: {'; '.join(f.changes)}" if f.changes else ""
    return (f"{f.key.metric} {f.kind} {pct(f.relative_change)} ({before} -> {after}), "
            f"p {pvalue(f.p_value)}: {f.verdict}{changed}")


def _finding_text(f: Finding) -> str:
    lines = [finding_message(f), f"series: {f.key.label} ({f.key.model})",
             f"last good bench: {f.last_good_bench or '-'}",
             f"first bad bench: {f.first_bad_bench or '-'}"]
    lines += [f"changed: {c}" for c in f.changes]
    if f.detail:
        lines.append(f.detail)
    return "\n".join(lines)


def _runs_case(serial: str, recipe: str, runs: list[RunView], lost: list[EventView]) -> _Case:
    case = _Case(f"{recipe}: runs", f"{serial}.{recipe}",
                 time_s=sum(r.seconds or 0.0 for r in runs))
    failed = [r for r in runs if r.failed]
    if failed:
        message = (f"{len(failed)} of {len(runs)} runs failed: "
                   + "; ".join(f"{r.id} {r.diagnosis or r.validity_reason or r.status}"
                               for r in failed))
        case.failures.append(("run-failed", message, "\n".join(
            f"{r.id} {r.status}: {r.diagnosis or r.validity_reason or ''}" for r in failed)))
    for event in lost:
        case.errors.append(("phone-lost", f"phone {serial} lost: {event.text}", event.text))
    invalid = [r for r in runs if r.invalid]
    case.out += [f"invalid run {r.id}: {r.validity}: {r.validity_reason or ''}"
                 for r in invalid]
    measured = [r for r in runs if not r.warmup]
    if measured and not failed and not lost and len(invalid) == len(measured):
        case.skipped = f"every run of {recipe} on {serial} was invalid (not measured)"
    return case


def _cases(report: Report) -> dict[str, list[_Case]]:
    """Test cases per phone serial."""
    runs: dict[tuple[str, str], list[RunView]] = defaultdict(list)
    for r in report.runs:
        runs[(r.serial or "?", r.recipe)].append(r)
    lost: dict[tuple[str, str], list[EventView]] = defaultdict(list)
    for e in report.lost:
        lost[(e.serial or "?", e.recipe or "?")].append(e)
    findings: dict[tuple[str, str, str], list[Finding]] = defaultdict(list)
    for f in report.findings:
        findings[(f.key.serial, f.key.recipe, f.key.metric)].append(f)
    metrics = {(p.serial, row.recipe, row.metric) for p in report.phones for row in p.rows}
    cases: dict[str, list[_Case]] = defaultdict(list)
    for serial, recipe in sorted(set(runs) | set(lost)):
        cases[serial].append(_runs_case(serial, recipe, runs.get((serial, recipe), []),
                                        lost.get((serial, recipe), [])))
    for serial, recipe, metric in sorted(metrics | set(findings)):
        case = _Case(f"{recipe} {metric}", f"{serial}.{recipe}")
        for f in findings.get((serial, recipe, metric), []):
            if f.kind == "improvement":
                case.out.append(finding_message(f))
            else:
                case.failures.append((f.kind, finding_message(f), _finding_text(f)))
        cases[serial].append(case)
    return cases


def _iso(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _case_element(case: _Case) -> ET.Element:
    el = ET.Element("testcase", name=_text(case.name), classname=_text(case.classname),
                    time=f"{case.time_s:.3f}")
    if case.skipped:
        ET.SubElement(el, "skipped", message=_text(case.skipped))
    for tag, items in (("failure", case.failures), ("error", case.errors)):
        for kind, message, text in items:
            sub = ET.SubElement(el, tag, type=kind, message=_text(message))
            sub.text = _text(text)
    if case.out:
        ET.SubElement(el, "system-out").text = _text("\n".join(case.out))
    return el


def _suite(root: ET.Element, report: Report, index: int, serial: str, model: str,
           cases: list[_Case]) -> dict[str, int]:
    counts = {"tests": len(cases), "failures": sum(bool(c.failures) for c in cases),
              "errors": sum(bool(c.errors) for c in cases),
              "skipped": sum(c.skipped is not None for c in cases)}
    bench = report.bench
    suite = ET.SubElement(
        root, "testsuite", name=_text(f"{serial} ({model or '?'})"),
        tests=str(counts["tests"]), failures=str(counts["failures"]),
        errors=str(counts["errors"]), skipped=str(counts["skipped"]),
        time=f"{sum(c.time_s for c in cases):.3f}",
        timestamp=_iso(bench.started_at if bench else report.generated_at), id=str(index),
        package="harness.bench", hostname=_text(bench.host if bench and bench.host
                                                else "localhost"))
    props = ET.SubElement(suite, "properties")
    for name, value in (("serial", serial), ("model", model),
                        ("bench", bench.id if bench else "")):
        ET.SubElement(props, "property", name=name, value=_text(value))
    suite.extend(_case_element(c) for c in cases)
    return counts


def render_junit(report: Report) -> str:
    """The report as JUnit XML (see the module docstring), with an XML declaration."""
    models = {p.serial: p.model for p in report.phones}
    models.update({r.serial: r.model for r in report.runs if r.serial and r.model})
    root = ET.Element("testsuites", name=_text(report.title))
    totals = {"tests": 0, "failures": 0, "errors": 0}  # <testsuites> has no "skipped"
    seconds = 0.0
    for index, (serial, cases) in enumerate(sorted(_cases(report).items())):
        counts = _suite(root, report, index, serial, models.get(serial) or "", cases)
        for name in totals:
            totals[name] += counts[name]
        seconds += sum(c.time_s for c in cases)
    for name, total in totals.items():
        root.set(name, str(total))
    root.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
            + "\n")
