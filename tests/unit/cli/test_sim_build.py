"""``harness sim build``: a new build of the simulated binaries, written into an asset root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from tests.badinput import invoke


def test_sim_build_writes_the_binaries_with_their_build(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sim", "build", "--out", str(tmp_path / "b"), "--speed",
                                      "1.05", "--tnn-reuse", "--binary", "sd15_pipeline_run",
                                      "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["build"] == {"speed": 1.05, "tnn_reuse": True, "label": ""}
    path = tmp_path / "b" / "sd15_pipeline_run"
    assert data["files"] == [str(path)]
    assert "'tnn_reuse': True" in path.read_text()


def test_sim_build_refuses_an_unknown_binary(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    outcome = invoke(["sim", "build", "--out", str(tmp_path), "--binary", "x"], capsys)
    assert outcome.code == 2
    assert outcome.err.startswith("error: unknown binary x") and "Traceback" not in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1
