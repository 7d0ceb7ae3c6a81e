"""The canonical JSON: versioned, complete, documented, and valid JSON (no NaN)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

from harness.report.canonical import render_json, to_dict
from harness.report.collect import collect_bench, resolve_bench
from harness.report.model import SCHEMA, SCHEMA_VERSION
from harness.results.query import last_bench
from harness.results.store import Store
from tests.reportdb import BuiltDb
from tests.unit.report.conftest import EVIL, hostile_report

SCHEMA_DOC = Path(__file__).resolve().parents[3] / "harness" / "report" / "SCHEMA.md"


def test_version_counts_and_derived_fields(small_nightly: BuiltDb) -> None:
    with Store.open(small_nightly.path) as store:
        report = collect_bench(store, resolve_bench(store, None))
    data = json.loads(render_json(report))
    assert (data["schema"], data["schema_version"]) == (SCHEMA, SCHEMA_VERSION) == \
        ("harness-report", 1)
    assert data["verdict"] == "regressed" and data["counts"]["regressions"] == 1
    assert data["counts"]["runs"] == len(data["runs"]) == len(report.runs)
    assert "timelines" not in data  # the samples stay in the database
    failed = [r for r in data["runs"] if r["failed"]]
    assert [r["id"] for r in failed] == [small_nightly.failed_run]
    serial, recipe, metric = small_nightly.regression
    finding = data["findings"][0]
    assert finding["key"] | {"label": ""} == {"model": "Galaxy S24 Ultra", "serial": serial,
                                              "recipe": recipe, "metric": metric,
                                              "variant": "", "label": ""}
    assert any("sdxl-binaries changed" in c for c in finding["changes"])
    assert data["runs"][0]["telemetry"]["samples"] > 0


def test_non_finite_numbers_become_null() -> None:
    report = hostile_report()
    finding = dataclasses.replace(report.findings[0], p_value=math.nan,
                                  relative_change=math.inf)
    text = render_json(dataclasses.replace(report, findings=(finding,)))
    data = json.loads(text)  # allow_nan=False in the writer: no NaN token either
    assert data["findings"][0]["p_value"] is None
    assert data["findings"][0]["relative_change"] is None
    assert data["title"] == report.title and EVIL in data["title"]


def test_empty_database(empty_store: Store) -> None:
    with empty_store:
        data = to_dict(collect_bench(empty_store, last_bench(empty_store)))
    assert data["verdict"] == "empty" and data["bench"] is None and data["runs"] == []


def test_every_field_is_documented(small_nightly: BuiltDb) -> None:
    with Store.open(small_nightly.path) as store:
        data = to_dict(collect_bench(store, resolve_bench(store, None)))
    doc = SCHEMA_DOC.read_text()
    names: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if not re.match(r"^[a-z]+[0-9]*/|^temp_|^cpu\d", k):  # data keys, not fields
                    names.add(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    # A run's conditions are harness bench's record, kept as it is: not the report's fields.
    first = data["runs"][0] | {"conditions": None}
    walk({k: v for k, v in data.items() if k != "runs"} | {"runs": [first]})
    missing = sorted(n for n in names if f'"{n}"' not in doc)
    assert missing == []
