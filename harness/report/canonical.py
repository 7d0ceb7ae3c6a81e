"""The canonical JSON form of a report (``SCHEMA.md`` in this package documents it).

``{"schema": "harness-report", "schema_version": 1, ...}``: the model's fields as
:func:`dataclasses.asdict` gives them, plus the derived values a script would otherwise
recompute (the night's verdict, counts, each run's ``failed``/``invalid``, each series'
``label``). Non-finite floats become ``null`` (JSON has no NaN). The raw telemetry samples
are left out (they are in the database; each run carries their summary).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from harness.report.model import SCHEMA, SCHEMA_VERSION, Report


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_dict(report: Report) -> dict[str, Any]:
    body = asdict(report)
    body.pop("timelines")
    for run, view in zip(body["runs"], report.runs, strict=True):
        run["failed"], run["invalid"] = view.failed, view.invalid
    for item, finding in zip(body["findings"], report.findings, strict=True):
        item["key"]["label"] = finding.key.label
    for item, series in zip(body["series"], report.series, strict=True):
        item["key"]["label"] = series.key.label
    for event, event_view in zip(body["events"], report.events, strict=True):
        event["text"] = event_view.text
    head = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "verdict": report.verdict,
            "counts": {"runs": len(report.runs), "failed": len(report.failed_runs),
                       "invalid": len(report.invalid_runs), "lost": len(report.lost),
                       "regressions": len(report.regressions),
                       "improvements": sum(f.kind == "improvement" for f in report.findings),
                       "quality": sum(f.kind == "quality" for f in report.findings)}}
    result: dict[str, Any] = _finite(head | body)
    return result


def render_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, sort_keys=False, allow_nan=False) + "\n"
