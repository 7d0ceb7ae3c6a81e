"""scripts/coverage_by_layer.py: files grouped by layer, unit and whole-suite columns."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "coverage_by_layer.py"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coverage_by_layer", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(path: Path, files: dict[str, tuple[int, int]]) -> Path:
    path.write_text(json.dumps({"files": {
        name: {"summary": {"covered_lines": c, "num_statements": n}}
        for name, (c, n) in files.items()}}))
    return path


def test_table_per_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = report(tmp_path / "whole.json", {
        "harness/errors.py": (10, 10), "harness/device/device.py": (90, 100),
        "/abs/harness/device/adb.py": (50, 100), "harness/sim/farm.py": (30, 40),
        "harness/bench/x.py": (1, 2), "tests/x.py": (5, 5)})
    unit = report(tmp_path / "unit.json", {"harness/errors.py": (5, 10),
                                           "harness/device/device.py": (20, 100)})
    assert script().main([str(whole), str(unit)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]
            if line and not line.startswith("-")}
    assert "in-process" in out.splitlines()[0]
    assert list(rows) == ["device", "sim", "ground", "bench", "total"]  # layer order
    assert rows["device"] == ["200", "70%", "10%"]
    assert rows["sim"] == ["40", "75%", "0%"]  # not imported by the unit tests at all
    assert rows["ground"] == ["10", "100%", "50%"]
    assert rows["total"] == ["252", "72%", "10%"]


def test_usage_error_without_reports(capsys: pytest.CaptureFixture[str]) -> None:
    assert script().main([]) == 2
    assert "coverage_by_layer.py WHOLE.json" in capsys.readouterr().err
