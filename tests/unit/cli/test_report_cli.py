"""`harness report` and `harness runs show --html` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import harness
from tests.reportdb import BuiltDb, build
from tests.unit.cli.test_imports import imported_by


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> BuiltDb:
    return build(tmp_path_factory.mktemp("cli") / "r.sqlite", nights=8, runs=3)


def test_no_output_option_prints_the_markdown(nightly: BuiltDb) -> None:
    done = harness("report", "--db", str(nightly.path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("### harness bench ") and "**lost**" in done.stdout


def test_json_to_stdout_and_files(nightly: BuiltDb, tmp_path: Path) -> None:
    done = harness("report", nightly.bench_ids[-1][:16], "--db", str(nightly.path),
                   "--json", "-", "--junit", str(tmp_path / "j.xml"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bench"]["id"] == nightly.bench_ids[-1]
    assert "wrote junit: " in done.stderr and (tmp_path / "j.xml").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["report", "--last", "01ABC"], "give BENCH_ID or --last, not both"),
    (["report", "ZZZZ"], "no bench 'ZZZZ'"),
    (["runs", "show", "ZZZZ", "--html", "x.html"], "no run 'ZZZZ'"),
])
def test_bad_input_is_one_line(nightly: BuiltDb, tmp_path: Path, args: list[str],
                               message: str) -> None:
    done = harness(*args, "--db", str(nightly.path), cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr and not (tmp_path / "x.html").exists()


def test_unwritable_destination_is_one_line(nightly: BuiltDb, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = harness("report", "--db", str(nightly.path), "--md", str(blocker / "s.md"))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_empty_database(tmp_path: Path) -> None:
    done = harness("report", "--db", str(tmp_path / "new.sqlite"), "--json", "-")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] == "empty"


def test_runs_show_html(nightly: BuiltDb, tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    done = harness("runs", "show", nightly.failed_run, "--db", str(nightly.path), "--html",
                   str(page))
    assert done.returncode == 0, done.stderr
    assert nightly.failed_run in done.stdout  # the usual text as well
    assert "wrote html: " in done.stderr and nightly.failed_run in page.read_text()


def test_the_cli_loads_no_report_machinery_until_asked() -> None:
    mods = imported_by("import harness.cli")
    assert "matplotlib" not in mods and "jinja2" not in mods
    assert not {m for m in mods if m.startswith("harness.report")}
