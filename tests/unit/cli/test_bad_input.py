"""Every malformed input of tests/data/bad_input.yaml gets one clean line and a non-zero exit.

The cases are data (see the file's header); this runs those that need no phone, in-process,
each in its own HARNESS_HOME. A case that wrongly starts a virtual farm fails (and the farm
is stopped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.badinput import check, invoke, load_cases, prepare

CASES = load_cases(phone=False)


def test_the_table_is_big_and_ids_are_unique() -> None:
    every = load_cases(phone=False) + load_cases(phone=True)
    ids = [c["id"] for c in every]
    assert len(ids) == len(set(ids))
    assert len(every) >= 175


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HARNESS_HOME", str(home))
    argv = prepare(case, tmp_path, home)
    try:
        outcome = invoke(argv, capsys)
    finally:
        farm_state = home / "sim" / "farm.json"
        if farm_state.exists():  # the case was not refused before a farm started
            from harness.sim.farm import Farm

            Farm(home / "sim").down()
            pytest.fail("a virtual farm was started")
    check(case, outcome, home / "results.sqlite")
