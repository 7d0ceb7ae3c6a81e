"""The HTML report looked at as a person would: opened in headless Chromium with the
network shut (tests/browser.py), screenshotted, and checked for what a reader must see.

- The morning view (the regression table) is on the first screen, holds the planted
  regression, and is drawn (its pixels are not blank); the series plots are drawn SVG with
  text as text; the thumbnails decoded.
- The page made no request (DevTools saw none but the file itself and data: images, the
  trap proxy got no connection) and logged no error (console, exceptions, log entries, CSP).
- Hostile names and diagnoses (``<script>``, ``onerror=``, ``$...$``) stay text: no script
  of theirs ran, no dialog opened, and the reader sees them verbatim.

Screenshots land in the test's temporary folder, and in ``$HARNESS_SCREENSHOT_DIR`` when set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.browser import Page, Trap, chromium_path, open_page
from tests.helpers import harness
from tests.reportdb import BuiltDb, build

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="Debian's chromium is not installed (scripts/check installs it when run as root)")

HOSTILE_RECIPE = '<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">'
HOSTILE_DIAGNOSIS = "<b>bold</b> $x^2$ {{ 7*7 }} <svg onload=window.__pwned=3>"

DOM_PROBE = """(() => {
  const box = (el) => { if (!el) return null; const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return {x: r.x, y: r.y + scrollY, w: r.width, h: r.height,
            shown: s.display !== "none" && s.visibility !== "hidden" && r.width > 0 && r.height > 0}; };
  const plots = [...document.querySelectorAll("figure.series svg.plot")];
  return {
    title: document.title,
    findings: box(document.querySelector("#findings")),
    findingRows: [...document.querySelectorAll("#findings tbody tr")].map(tr => tr.innerText),
    failures: [...document.querySelectorAll("#failures tbody tr")].map(tr => tr.innerText),
    invalid: [...document.querySelectorAll("#invalid tbody tr")].map(tr => tr.innerText),
    plot: box(plots[0]), plots: plots.length,
    plotTexts: plots.length ? plots[0].querySelectorAll("text").length : 0,
    timelines: document.querySelectorAll("figure.timeline svg.plot").length,
    images: [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0, alt: i.alt})),
    viewport: innerHeight, width: innerWidth,
    pwned: window.__pwned === undefined ? null : String(window.__pwned),
    text: document.body.innerText,
  };
})()"""


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> BuiltDb:
    root = tmp_path_factory.mktemp("nightly")
    return build(root / "results.sqlite", images_dir=root / "images")


def _keep(shot: Path) -> None:
    where = os.environ.get("HARNESS_SCREENSHOT_DIR")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(where) / shot.name)


def _ink(shot: Path, box: dict[str, float], scroll_y: float = 0.0) -> float:
    """Share of non-background pixels of ``box`` (page coordinates) in the screenshot."""
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("L"), dtype=np.float32)
    y0 = int(max(0, box["y"] - scroll_y))
    y1 = int(min(pixels.shape[0], box["y"] - scroll_y + box["h"]))
    x0, x1 = int(max(0, box["x"])), int(min(pixels.shape[1], box["x"] + box["w"]))
    region = pixels[y0:y1, x0:x1]
    assert region.size, f"{box} is outside the screenshot"
    return float(np.mean(region < 235))


def _load(page: Page, html: Path) -> dict[str, Any]:
    page.call("Page.navigate", url=html.resolve().as_uri())
    page.wait_event("Page.loadEventFired")
    probe = page.evaluate(DOM_PROBE)
    assert isinstance(probe, dict)
    return probe


def _assert_quiet(page: Page, trap: Trap, html: Path) -> None:
    """No request but the page itself and its data: images; no error of any kind."""
    urls = [e["params"]["request"]["url"] for e in page.named("Network.requestWillBeSent")]
    assert [u for u in urls if u != html.resolve().as_uri() and not u.startswith("data:")] == []
    assert page.named("Network.loadingFailed") == []
    assert trap.connections == 0
    errors = [e for e in page.named("Runtime.consoleAPICalled")
              if e["params"]["type"] in ("error", "assert", "warning")]
    errors += page.named("Runtime.exceptionThrown")
    errors += [e for e in page.named("Log.entryAdded")
               if e["params"]["entry"]["level"] in ("error", "warning")]
    assert errors == []
    assert page.named("Page.javascriptDialogOpening") == []


def test_report_renders_in_a_browser_offline(nightly: BuiltDb, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    done = harness("report", "--last", "--db", str(nightly.path), "--html", str(html))
    assert done.returncode == 0, done.stderr
    assert html.stat().st_size < 5_000_000
    with open_page(tmp_path / "profile") as (page, trap):
        probe = _load(page, html)
        shot = page.screenshot(tmp_path / "report-top.png")
        _keep(shot)
        # The morning view is on the first screen, with the planted regression in it.
        findings = probe["findings"]
        assert findings["shown"] and findings["y"] < probe["viewport"]
        serial, recipe, metric = nightly.regression
        assert any(serial in row and recipe in row and metric in row and "regression" in row
                   for row in probe["findingRows"]), probe["findingRows"]
        assert _ink(shot, findings) > 0.03  # drawn: header shading and text, not blank
        assert any("lost" in row for row in probe["failures"])
        assert any(nightly.failed_run in row for row in probe["failures"])
        assert len(probe["invalid"]) == 2
        # The plots: drawn SVG, text kept as text.
        assert probe["plots"] >= 12 and probe["plotTexts"] > 5 and probe["timelines"] >= 6
        plot = probe["plot"]
        assert plot["shown"]
        page.evaluate(f"window.scrollTo(0, {plot['y'] - 20})")
        scrolled = page.evaluate("scrollY")
        plot_shot = page.screenshot(tmp_path / "report-plot.png")
        _keep(plot_shot)
        assert _ink(plot_shot, plot, scroll_y=scrolled) > 0.02
        # Thumbnails (and the colour-block overlay) decoded from their data: URIs.
        assert probe["images"] and all(i["ok"] for i in probe["images"])
        assert any("colour blocks" in i["alt"] for i in probe["images"])
        _assert_quiet(page, trap, html)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> BuiltDb:
    root = tmp_path_factory.mktemp("hostile")
    recipes = {HOSTILE_RECIPE: {"sd15": {"s/step": 0.42}}, "sdxl-1024": {"vae": {"s/it": 2.6}}}
    return build(root / "results.sqlite", nights=8, runs=3, recipes=recipes,
                 images_dir=root / "images", diagnosis_text=HOSTILE_DIAGNOSIS)


def test_hostile_strings_stay_text_in_the_browser(hostile: BuiltDb, tmp_path: Path) -> None:
    html = tmp_path / "hostile.html"
    done = harness("report", "--db", str(hostile.path), "--html", str(html))
    assert done.returncode == 0, done.stderr
    with open_page(tmp_path / "profile") as (page, trap):
        probe = _load(page, html)
        _keep(page.screenshot(tmp_path / "hostile-top.png"))
        assert probe["pwned"] is None
        assert HOSTILE_RECIPE in probe["text"] and HOSTILE_DIAGNOSIS in probe["text"]
        assert probe["plots"] >= 1
        _assert_quiet(page, trap, html)


def test_run_page_renders_in_a_browser(nightly: BuiltDb, tmp_path: Path) -> None:
    html = tmp_path / "run.html"
    done = harness("runs", "show", nightly.blocks_run, "--db", str(nightly.path), "--html",
                   str(html))
    assert done.returncode == 0, done.stderr
    with open_page(tmp_path / "profile") as (page, trap):
        probe = _load(page, html)
        shot = page.screenshot(tmp_path / "run-top.png")
        _keep(shot)
        assert probe["timelines"] == 1
        assert len(probe["images"]) == 2 and all(i["ok"] for i in probe["images"])
        _assert_quiet(page, trap, html)



def test_sweep_page_renders_in_a_browser(tmp_path: Path) -> None:
    from tests.unit.report.test_repro import _sweep_folder

    html = tmp_path / "sweep.html"
    done = harness("report", "--sweep", str(_sweep_folder(tmp_path)), "--html", str(html),
                   "--db", str(tmp_path / "r.sqlite"))
    assert done.returncode == 0, done.stderr
    with open_page(tmp_path / "profile") as (page, trap):
        probe = _load(page, html)
        _keep(page.screenshot(tmp_path / "sweep-top.png"))
        sheet = page.evaluate("(() => { const i = document.querySelector('#sheet');"
                              " return i && i.complete && i.naturalWidth; })()")
        assert sheet and sheet > 100
        assert probe["pwned"] is None and all(i["ok"] for i in probe["images"])
        _assert_quiet(page, trap, html)
