"""write_reports: the library call bench and the CLI make; whole files, folders made."""

from __future__ import annotations

import json
from pathlib import Path

import junitparser

from harness.report.write import write_reports, write_run_report
from harness.results.store import Store
from tests.reportdb import BuiltDb


def test_writes_every_format(small_nightly: BuiltDb, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er"
    with Store.open(small_nightly.path) as store:
        written = write_reports(store, None, html=out / "r.html", junit=out / "j.xml",
                                md=out / "s.md", json=out / "r.json")
    assert set(written.files) == {"html", "junit", "md", "json"}
    for path, size in written.files.values():
        assert path.stat().st_size == size > 0
    assert sorted(p.name for p in out.iterdir()) == ["j.xml", "r.html", "r.json", "s.md"]
    assert json.loads((out / "r.json").read_text())["verdict"] == "regressed"
    assert str(out / "r.html") in (out / "s.md").read_text()
    assert len(list(junitparser.JUnitXml.fromfile(str(out / "j.xml")))) == 3


def test_nothing_asked_nothing_written(small_nightly: BuiltDb, tmp_path: Path) -> None:
    with Store.open(small_nightly.path) as store:
        written = write_reports(store, small_nightly.bench_ids[-1])
    assert written.files == {} and written.report.bench is not None


def test_run_report(small_nightly: BuiltDb, tmp_path: Path) -> None:
    with Store.open(small_nightly.path) as store:
        written = write_run_report(store, small_nightly.failed_run, html=tmp_path / "run.html")
    page = (tmp_path / "run.html").read_text()
    assert small_nightly.failed_run in page and "killed by lmkd" in page
    assert [p.name for p in tmp_path.iterdir()] == ["run.html"]  # no temporary left
    assert written.report.runs[0].failed
