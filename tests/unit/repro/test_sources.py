"""A plan to bisect from a plan file (as `recipes render --json` prints it) or a stored run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.recipes.load import render_recipe
from harness.repro.sources import load_plan
from harness.results.store import Store


def test_plan_file_wrapped_plan_and_stored_run(tmp_path: Path) -> None:
    plan = render_recipe("sd15-512")
    (tmp_path / "p.json").write_text(json.dumps(plan.to_dict()))
    (tmp_path / "w.json").write_text(json.dumps({"name": "x", "plan": plan.to_dict()}))
    assert load_plan(str(tmp_path / "p.json"), None)[0] == plan
    assert load_plan(str(tmp_path / "w.json"), None)[0] == plan
    db = tmp_path / "r.sqlite"
    with Store.open(db) as store:
        run_id = store.begin_run(plan, serial="S")
    loaded, label = load_plan(run_id[:10].lower(), db)
    assert loaded == plan and label == f"run {run_id}"


@pytest.mark.parametrize(("content", "match"), [
    ("[1, 2]", "no object"), ("{", "not a plan JSON file"), ('{"steps": []}', "not a harness plan"),
])
def test_bad_plan_files(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "p.json").write_text(content)
    with pytest.raises(UsageError, match=match):
        load_plan(str(tmp_path / "p.json"), None)
