"""Sweep and replay pages: from the files `harness repro sweep` and `harness replay --json`
leave, escaped, self-contained; anything else refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from harness.errors import UsageError
from harness.report.html import render_repro_html
from harness.report.repro import load_replay, load_sweep
from harness.results.store import Store
from tests.helpers import harness
from tests.reportdb import BuiltDb
from tests.unit.report.conftest import EVIL


def _sweep_folder(root: Path) -> Path:
    folder = root / "sweep-20260602-040000-sdxl-1024"
    folder.mkdir(parents=True)
    Image.new("RGB", (600, 300), (200, 30, 30)).save(folder / "sheet.png")
    cells = []
    for i, (k, kind) in enumerate([("0", "blocks"), ("2", "clean"), (EVIL, "failed")]):
        image = folder / f"cell{i}.png"
        Image.new("RGB", (64, 64), (i * 80, 100, 200)).save(image)
        cells.append({"index": i, "settings": {"early_decode_k": k}, "set": [],
                      "verdict": kind, "label": f"{kind} 1/1", "counts": {kind: 1},
                      "seconds_median": 41.5 + i,
                      "runs": [{"kind": kind, "detail": f"detail {EVIL}", "run_id": f"01RUN{i}",
                                "seconds": 41.5, "metrics": {}, "image": str(image),
                                "blocks_pct": None}]})
    (folder / "sweep.json").write_text(json.dumps({
        "format": 1, "recipe": "sdxl-1024", "serial": "R5CW30SIM0A", "repeat": 1,
        "axes": [{"var": "early_decode_k", "values": ["0", "2", EVIL], "kind": "param",
                  "steps": []}],
        "cells": cells, "folder": str(folder), "sheet": str(folder / "sheet.png")}))
    return folder


def test_sweep_page(tmp_path: Path) -> None:
    view = load_sweep(_sweep_folder(tmp_path))
    assert [c.verdict for c in view.cells] == ["blocks", "clean", "failed"]
    assert view.sheet and view.sheet.startswith("data:image/jpeg;base64,")
    page = render_repro_html(sweep=view, harness_version="0.1.0", generated_at=0.0)
    assert 'id="sheet"' in page and page.count("<img") == 4
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "default-src 'none'" in page


def test_sweep_folder_moved(tmp_path: Path) -> None:
    folder = _sweep_folder(tmp_path / "a")
    moved = folder.rename(tmp_path / "moved")
    assert load_sweep(moved / "sweep.json").sheet  # the sheet beside the JSON is found


def test_replay_page_with_the_runs_in_the_store(small_nightly: BuiltDb, tmp_path: Path) -> None:
    side = {"label": "original", "run_id": small_nightly.failed_run, "serial": "R5CW30SIM0C",
            "model": "Xperia 1 IV", "ram": "12 GB", "status": "failed", "verdict": "oom",
            "detail": EVIL, "steps": {"sd15": 20.0}, "exit_codes": {"sd15": None},
            "metrics": {"sd15.s/step": 0.61}, "peak_rss_kb": 7.9e6,
            "min_mem_available_kb": 3.1e5, "energy_j": None}
    other = side | {"label": "replay on R5CW30SIM0A", "run_id": "01NOT-IN-STORE",
                    "status": "ok", "verdict": "clean", "metrics": {"sd15.s/step": 0.42}}
    path = tmp_path / "replay.json"
    path.write_text(json.dumps({"bundle": "b.tar", "assets": "on the phone",
                                "original": side, "replay": other, "warnings": [EVIL]}))
    with Store.open(small_nightly.path) as store:
        view = load_replay(path, store)
    assert view.metrics == (("sd15.s/step", 0.61, 0.42),)
    page = render_repro_html(replay=view, harness_version="0.1.0", generated_at=0.0)
    assert "-31.1%" in page and "not in this results database" in page
    assert "<script>alert" not in page


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"format": 9, "cells": []}'])
def test_not_a_sweep(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sweep.json"
    path.write_text(text)
    with pytest.raises(UsageError, match="sweep.json"):
        load_sweep(path)
    with pytest.raises(UsageError, match="replay"):
        load_replay(path)


def test_cli(tmp_path: Path) -> None:
    folder = _sweep_folder(tmp_path)
    done = harness("report", "--sweep", str(folder), "--html", str(tmp_path / "s.html"),
                   "--db", str(tmp_path / "r.sqlite"))
    assert done.returncode == 0, done.stderr
    assert "Contact sheet" in (tmp_path / "s.html").read_text()
    done = harness("report", "--sweep", str(folder), "--db", str(tmp_path / "r.sqlite"))
    assert done.returncode == 2 and "--html" in done.stderr
