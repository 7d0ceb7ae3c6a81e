"""The HTML report: self-contained, escaped, and whole for an empty or a failed night."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from harness.report.collect import collect_bench, collect_run, resolve_bench
from harness.report.html import render_html
from harness.report.model import Report
from harness.results.query import last_bench
from harness.results.store import Store
from tests.reportdb import BuiltDb, build
from tests.unit.report.conftest import EVIL, fail_everything, hostile_report


class _Scan(HTMLParser):
    """Every start tag and attribute the browser would see."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _scan(page: str) -> _Scan:
    scan = _Scan()
    scan.feed(page)
    return scan


def test_hostile_text_is_escaped_everywhere() -> None:
    page = render_html(hostile_report())
    scan = _scan(page)
    # The page's own script is the only one, and no element carries an event handler.
    assert len(scan.scripts) == 1 and "alert" not in scan.scripts[0]
    assert [t for t, _ in scan.tags].count("script") == 1
    assert not [(t, a) for t, a in scan.tags for name in a if name.startswith("on")]
    assert not [a for t, a in scan.tags if t == "img" and a.get("src") == "x"]
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "{{ 7*7 }}" in page  # text, not a template


def test_plot_text_from_the_database_is_escaped_by_matplotlib() -> None:
    page = render_html(hostile_report())
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert svgs, "the series and timeline plots are inline SVG"
    assert any("&lt;script&gt;" in svg for svg in svgs)  # the recipe name is in a title
    for svg in svgs:
        assert "<script" not in svg and "<img" not in svg


def test_page_asks_for_nothing_outside_itself() -> None:
    page = render_html(hostile_report())
    scan = _scan(page)
    csp = [a.get("content") or "" for t, a in scan.tags if t == "meta"
           and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0] and "img-src data:" in csp[0]
    for tag, attrs in scan.tags:
        for name in ("src", "href", "srcset", "action", "data", "poster"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("#", "data:")), (tag, name, value)
    assert "<link" not in page and "@import" not in page
    assert re.findall(r"url\((?!#)", page) == []  # only clip paths of the page's own SVG
    # Namespace names are not requests: every other http(s) URL is.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink",
                    "http://purl.org/dc/elements/1.1/", "http://creativecommons.org/ns#",
                    "http://www.w3.org/1999/02/22-rdf-syntax-ns#"}, urls


def test_svg_ids_are_unique_across_plots(small_nightly: BuiltDb) -> None:
    with Store.open(small_nightly.path) as store:
        report = collect_bench(store, resolve_bench(store, None))
    page = render_html(report, thumbnails=False)
    ids = re.findall(r'\sid="([^"]+)"', page)
    duplicated = {i for i in ids if ids.count(i) > 1}
    assert not duplicated, sorted(duplicated)[:5]
    assert page.count("<svg") >= len(report.series)
    assert "<text" in page  # svg.fonttype none: labels stay text


def test_empty_database_gives_a_page_that_says_so(empty_store: Store) -> None:
    with empty_store:
        report = collect_bench(empty_store, last_bench(empty_store))
    page = render_html(report)
    assert "no bench yet" in page and "harness bench" in page
    assert report.verdict == "empty"


def test_bench_with_only_failures(tmp_path: Path) -> None:
    built = build(tmp_path / "r.sqlite", nights=8, runs=3)
    fail_everything(built.path, built.bench_ids[-1])
    with Store.open(built.path) as store:
        report = collect_bench(store, resolve_bench(store, built.bench_ids[-1]))
    assert report.verdict == "failed"
    assert len(report.failed_runs) == len(report.runs) > 0
    assert all(not p.rows for p in report.phones)
    page = render_html(report, thumbnails=False)
    assert page.count('class="run failed"') == len(report.runs)
    assert "No valid measured run." in page


def test_single_run_page(small_nightly: BuiltDb) -> None:
    with Store.open(small_nightly.path) as store:
        report: Report = collect_run(store, small_nightly.failed_run)
    page = render_html(report)
    assert report.runs[0].id in page and 'id="morning"' not in page
    assert "lowmemorykiller" in page  # the step's log excerpt
    assert page.count('<figure class="timeline">') == 1  # it has telemetry


def test_hostile_constant_is_hostile() -> None:
    assert "<script>" in EVIL  # the tests above test something


def test_a_run_with_colour_blocks_says_so_in_its_heading(tmp_path: Path) -> None:
    # Seen on the screenshots: a run `ok` by exit status whose output has colour blocks read
    # "ok" in its heading, the blocks only visible in the picture further down.
    db = build(tmp_path / "results.sqlite", nights=2, images_dir=tmp_path / "images")
    with Store.open(db.path) as store:
        blocked = render_html(collect_run(store, db.blocks_run))
        clean = render_html(collect_run(store, db.failed_run))
    heading = re.search(r"<summary>(.*?)</summary>", blocked, re.S)
    assert heading and "colour blocks" in heading.group(1)
    other = re.search(r"<summary>(.*?)</summary>", clean, re.S)
    assert other and "colour blocks" not in other.group(1)
