"""A short Markdown summary for a chat channel or a GitHub job summary
(``$GITHUB_STEP_SUMMARY``): the verdict, regressions (and improvements), failed runs and
lost phones, invalid runs counted, and where the HTML report is.

Everything from the database is escaped: Markdown's punctuation gets a backslash, ``<``,
``>`` and ``&`` become entities (GitHub passes some HTML through; a chat may pass all of
it), line breaks become spaces (a table row is one line).
"""

from __future__ import annotations

import re
from collections import Counter

from harness.report.fmt import num, pct, pvalue, when
from harness.report.model import Finding, Report

MAX_ROWS = 20  # rows per table; the HTML has the rest
# Inline Markdown: emphasis, code, links (no "[" means no link, so parentheses are safe),
# table cells, strikethrough. Line-start syntax (#, -, 1.) cannot arise: every escaped text
# follows other text on its line.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _code(text: str) -> str:
    """A path as a code span (shown verbatim); escaped words when it holds a character a
    code span cannot keep harmless everywhere (a backtick, ``<``, ``>``, ``&``)."""
    one_line = " ".join(text.split())
    if any(c in one_line for c in "`<>&"):
        return md_escape(one_line)
    return f"`{one_line}`"


def md_escape(value: object) -> str:
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _finding_rows(findings: list[Finding]) -> list[str]:
    rows = ["| series | median before → after | change | p | what changed |",
            "| --- | --- | --- | --- | --- |"]
    for f in findings[:MAX_ROWS]:
        changed = "; ".join(md_escape(c) for c in f.changes) or "nothing recorded"
        rows.append(f"| {md_escape(f.key.label)} | {num(f.median_before)} → "
                    f"{num(f.median_after)} | {pct(f.relative_change)} | "
                    f"{pvalue(f.p_value)} | {changed} |")
    if len(findings) > MAX_ROWS:
        rows.append(f"| … and {len(findings) - MAX_ROWS} more | | | | |")
    return rows


def render_markdown(report: Report, *, html_path: str | None = None) -> str:
    bench = report.bench
    head = md_escape(report.title)
    lines = [f"### {head}: **{report.verdict}**", ""]
    phones = {r.serial for r in report.runs} | {e.serial for e in report.lost}
    lines.append(f"{_count(len(phones), 'phone')}, {_count(len(report.runs), 'run')} "
                 f"({len(report.failed_runs)} failed, {len(report.invalid_runs)} invalid), "
                 f"{_count(len(report.lost), 'phone')} lost"
                 + (f"; bench started {md_escape(when(bench.started_at))}"
                    if bench else "") + ".")
    if html_path:
        lines.append(f"Full report: {_code(html_path)}")
    lines.extend(f"> {md_escape(note)}" for note in report.notes)
    for kind, title in (("regression", "Regressions"), ("quality", "Output changes"),
                        ("improvement", "Improvements")):
        found = [f for f in report.findings if f.kind == kind]
        if found:
            lines += ["", f"**{title}**", "", *_finding_rows(found)]
    if not report.findings:
        lines += ["", "No regression or improvement."]
    trouble = [f"- {md_escape(e.serial or '?')} {md_escape(e.recipe or '')}: **lost**: "
               f"{md_escape(e.text)}" for e in report.lost]
    trouble += [f"- {md_escape(r.serial or '?')} {md_escape(r.recipe)}: **{r.status}**: "
                f"{md_escape(r.diagnosis or r.validity_reason or '')} (run {r.id})"
                for r in report.failed_runs[:MAX_ROWS]]
    if trouble:
        lines += ["", "**Failed runs and lost phones**", "", *trouble]
    if report.invalid_runs:
        kinds = Counter(r.validity or "?" for r in report.invalid_runs)
        lines += ["", "**Invalid runs** (not counted): " + ", ".join(
            f"{n} {md_escape(k)}" for k, n in sorted(kinds.items()))]
    return "\n".join(lines) + "\n"

