"""JUnit XML: what a CI system reads back (junitparser), valid by the Jenkins schema."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest
import xmlschema

from harness.report.collect import collect_bench, resolve_bench
from harness.report.junit import render_junit
from harness.report.model import Report
from harness.results.query import last_bench
from harness.results.store import Store
from tests.reportdb import BuiltDb, build
from tests.unit.report.conftest import EVIL, fail_everything, hostile_report

XSD = Path(__file__).resolve().parents[2] / "data" / "junit-jenkins.xsd"


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def _parse(xml: str, tmp_path: Path) -> junitparser.JUnitXml:
    path = tmp_path / "junit.xml"
    path.write_text(xml, encoding="utf-8")
    parsed = junitparser.JUnitXml.fromfile(str(path))
    assert isinstance(parsed, junitparser.JUnitXml)
    return parsed


def _cases(xml: junitparser.JUnitXml) -> dict[str, junitparser.TestCase]:
    return {f"{c.classname}::{c.name}": c for suite in xml for c in suite}


def _report(path: Path, bench: str | None = None) -> Report:
    with Store.open(path) as store:
        return collect_bench(store, resolve_bench(store, bench))


def test_a_case_per_phone_recipe_and_metric_with_the_regression_failing(
        small_nightly: BuiltDb, tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    xml = render_junit(_report(small_nightly.path))
    schema.validate(xml)
    cases = _cases(_parse(xml, tmp_path))
    serial, recipe, metric = small_nightly.regression
    regression = cases[f"{serial}.{recipe}::{recipe} {metric}"]
    assert not regression.is_passed
    failure = regression.result[0]
    assert isinstance(failure, junitparser.Failure) and failure.type == "regression"
    assert metric in (failure.message or "") and "sdxl-binaries changed" in (failure.message or "")
    assert cases[f"{serial}.sd15-512::sd15-512: runs"].is_passed
    lost = [c for c in cases.values() if c.result and isinstance(c.result[0], junitparser.Error)]
    assert [c.name for c in lost] == ["sdxl-1024: runs"]
    assert "lost" in (lost[0].result[0].message or "")
    failed = [c for c in cases.values() if c.result and c.result[0].type == "run-failed"]
    assert len(failed) == 1 and small_nightly.failed_run in (failed[0].result[0].message or "")


def test_counts_are_the_cases(small_nightly: BuiltDb) -> None:
    root = ET.fromstring(render_junit(_report(small_nightly.path)))
    total = 0
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(cases)
        assert int(suite.get("failures", "-1")) == sum(c.find("failure") is not None
                                                      for c in cases)
        assert int(suite.get("errors", "-1")) == sum(c.find("error") is not None for c in cases)
        total += len(cases)
    assert int(root.get("tests", "-1")) == total > 0


def test_hostile_text_and_control_bytes(tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    xml = render_junit(hostile_report())
    schema.validate(xml)
    assert "\x00" not in xml and "\x1b" not in xml
    cases = _cases(_parse(xml, tmp_path))
    messages = [r.message or "" for c in cases.values() for r in c.result]
    assert any(EVIL in m for m in messages)  # the text survives, escaped by the XML


def test_empty_database(empty_store: Store, tmp_path: Path,
                        schema: xmlschema.XMLSchema) -> None:
    with empty_store:
        xml = render_junit(collect_bench(empty_store, last_bench(empty_store)))
    schema.validate(xml)
    assert list(_parse(xml, tmp_path)) == []


def test_bench_with_only_failures(tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    built = build(tmp_path / "r.sqlite", nights=8, runs=3)
    fail_everything(built.path, built.bench_ids[-1])
    xml = render_junit(_report(built.path))
    schema.validate(xml)
    cases = _cases(_parse(xml, tmp_path))
    runs = [c for key, c in cases.items() if key.endswith(": runs")]
    assert runs and all(not c.is_passed for c in runs)


def test_schema_refuses_what_jenkins_would(schema: xmlschema.XMLSchema) -> None:
    assert not schema.is_valid('<testsuites><testsuite name="x"/></testsuites>')  # no tests
    assert not schema.is_valid('<testsuites><testsuite tests="1"><testcase/></testsuite>'
                               '</testsuites>')  # a case without a name
