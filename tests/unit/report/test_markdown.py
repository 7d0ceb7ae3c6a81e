"""The Markdown summary: short, escaped, and says what a chat reader needs."""

from __future__ import annotations

import re
from pathlib import Path

from harness.report.collect import collect_bench, resolve_bench
from harness.report.markdown import md_escape, render_markdown
from harness.results.query import last_bench
from harness.results.store import Store
from tests.reportdb import BuiltDb, build
from tests.unit.report.conftest import fail_everything, hostile_report


def test_escaping() -> None:
    assert md_escape("a|b*c_d`e[f](g)~h") == r"a\|b\*c\_d\`e\[f\](g)\~h"
    assert md_escape("<script>&") == "&lt;script&gt;&amp;"
    assert md_escape("two\nlines\r\n  here") == "two lines here"


def test_hostile_report_has_no_raw_markup() -> None:
    text = render_markdown(hostile_report(), html_path="out/<x>.html")
    assert "<script" not in text and "<img" not in text
    assert not re.search(r"(?<!\\)\]\(", text)  # no link: every "]" is escaped
    for line in text.splitlines():
        if line.startswith("| ") and "---" not in line:
            assert line.count(" | ") == 4, line  # no cell broke out of its row
    assert "out/&lt;x&gt;.html" in text


def test_summary_of_a_night(small_nightly: BuiltDb) -> None:
    with Store.open(small_nightly.path) as store:
        report = collect_bench(store, resolve_bench(store, None))
    text = render_markdown(report, html_path="/ci/report.html")
    head = text.splitlines()[0]
    assert head.startswith("### harness bench") and "**regressed**" in head
    assert "**Regressions**" in text and "sdxl\\-binaries" not in text
    assert "sdxl-binaries changed" in text and "/ci/report.html" in text
    assert "**lost**" in text and small_nightly.failed_run in text
    throttled = sum(r.validity == "throttled" for r in report.invalid_runs)
    assert f"**Invalid runs** (not counted): 1 hot-start, {throttled} throttled" in text


def test_empty_database(empty_store: Store) -> None:
    with empty_store:
        text = render_markdown(collect_bench(empty_store, last_bench(empty_store)))
    assert "**empty**" in text and "no bench yet" in text


def test_only_failures(tmp_path: Path) -> None:
    built = build(tmp_path / "r.sqlite", nights=8, runs=3)
    fail_everything(built.path, built.bench_ids[-1])
    with Store.open(built.path) as store:
        report = collect_bench(store, resolve_bench(store, None))
    text = render_markdown(report)
    assert "**failed**" in text.splitlines()[0]
    assert text.count("**failed**:") == len(report.runs)
