"""Where a plan to bisect or replay comes from: a stored run, or a plan JSON file.

A plan file is what ``harness recipes render NAME --json`` prints or a run folder's
``plan.json`` (``{"plan": {...}}`` wrappers, as ``recipes show --json`` gives, are accepted).
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import UsageError
from harness.recipes.plan import Plan
from harness.results.store import Store


def load_plan(ref: str, db_path: Path | None) -> tuple[Plan, str]:
    """The plan ``ref`` names (a plan file, else a run id or unique prefix) and a label."""
    path = Path(ref)
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{ref}: not a plan JSON file ({exc})") from exc
        if isinstance(data, dict) and isinstance(data.get("plan"), dict):
            data = data["plan"]
        if not isinstance(data, dict):
            raise UsageError(f"{ref}: not a plan JSON file (no object)")
        return Plan.from_dict(data), f"plan {ref}"
    if "/" in ref or ref.endswith(".json"):
        raise UsageError(f"{ref}: no such plan file")
    with Store.open(db_path) as store:
        detail = store.get_run(ref)
    return Plan.from_dict(detail.plan), f"run {detail.run.id}"


__all__ = ["load_plan"]
