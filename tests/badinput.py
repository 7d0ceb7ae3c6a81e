"""Run one case of tests/data/bad_input.yaml in-process through ``harness.cli.main``.

Shared by the unit test (cases that need no phone) and the e2e test (``phone: true``).
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

DATA = Path(__file__).resolve().parent / "data" / "bad_input.yaml"
NO_FARM = "servers: []\nsim: false\n"
MAX_LINE_CHARS = 1200  # what the CLI may print for one error (it caps messages at 1000)


def load_cases(phone: bool) -> list[dict[str, Any]]:
    cases = yaml.safe_load(DATA.read_text(encoding="utf-8"))["cases"]
    return [c for c in cases if bool(c.get("phone")) == phone]


def _content(value: Any) -> bytes | None:
    if isinstance(value, str):
        return value.encode("utf-8")
    if "latin1" in value:
        return str(value["latin1"]).encode("latin-1")
    if "zeros" in value:
        return b"\0" * int(value["zeros"])
    if "repeat" in value:
        text, count = value["repeat"]
        return (str(text) * int(count)).encode()
    return None  # {dir: true}


def _write(path: Path, value: Any) -> None:
    data = _content(value)
    if data is None:
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _arg(item: Any, tmp: Path, home: Path) -> str:
    if isinstance(item, dict):
        return os.fsdecode(str(item["latin1"]).encode("latin-1"))  # as argv would arrive
    return str(item).replace("{tmp}", str(tmp)).replace("{home}", str(home))


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def prepare(case: dict[str, Any], tmp: Path, home: Path) -> list[str]:
    """Write the case's files; return its argv."""
    files = dict(case.get("files") or {})
    for key, name in (("recipe", "r/bad.yaml"), ("assets", "r/assets.yaml"),
                      ("farm", "farm.yaml"), ("config", "home/config.yaml")):
        if key in case:
            files[name] = case[key]
    for name, value in files.items():
        target = home / name[len("home/"):] if name.startswith("home/") else tmp / name
        _write(target, value)
    argv = [_arg(a, tmp, home) for a in case["argv"]]
    if argv[:1] == ["run"]:
        if "--farm" not in argv and not case.get("phone"):
            (tmp / "_nofarm.yaml").write_text(NO_FARM)
            argv += ["--farm", str(tmp / "_nofarm.yaml")]
        if "--device" not in argv and "-d" not in argv:
            argv += ["--device", "no-such-phone"]
        if "--logs-dir" not in argv:
            argv += ["--logs-dir", str(tmp / "logs")]
    return argv


def invoke(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    from harness import cli

    capsys.readouterr()
    try:
        cli.main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def check(case: dict[str, Any], outcome: Outcome, db: Path) -> None:
    """The case's promise: one clean line, the right exit code, nothing stored ok."""
    lines = outcome.err.strip().splitlines()
    assert "Traceback" not in outcome.err, outcome.err
    assert outcome.code != 0, f"exit 0; stdout: {outcome.out[:300]!r}"
    assert len(lines) == 1, f"{len(lines)} stderr lines: {outcome.err[:600]!r}"
    assert lines[0].startswith("error: "), lines[0][:300]
    assert len(lines[0]) <= MAX_LINE_CHARS, f"{len(lines[0])} characters"
    if "exit" in case:
        assert outcome.code == case["exit"], f"exit {outcome.code}: {lines[0][:300]}"
    assert re.search(case["match"], lines[0]), f"{case['match']!r} not in {lines[0][:400]!r}"
    if case["argv"][:1] == ["run"] and db.exists():
        with sqlite3.connect(db) as conn:
            ok = conn.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0]
        assert ok == 0, "a run was stored as ok"
