"""The bad-input cases of tests/data/bad_input.yaml that need the virtual farm running."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.badinput import check, invoke, load_cases, prepare
from tests.simfarm import SimFarm

pytestmark = pytest.mark.e2e

CASES = load_cases(phone=True)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_on_the_farm(case: dict[str, Any], sim_farm: SimFarm, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    home = Path(os.environ["HARNESS_HOME"])
    before = [p.serial for p in sim_farm.phones]
    outcome = invoke(prepare(case, tmp_path, home), capsys)
    check(case, outcome, tmp_path / "none.sqlite")
    assert [p.serial for p in sim_farm.phones] == before, "the farm is unchanged"
