"""Plots: SVG that lives inside a page (text as text, own ids, no prolog), and decimation."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from harness.report.plots import decimate, timeline_svg, trend_svg
from tests.unit.report.conftest import EVIL, hostile_report


def test_trend_is_inline_svg_with_text_as_text() -> None:
    series = hostile_report().series[0]
    svg = trend_svg(series)
    assert svg.startswith("<svg") and "<?xml" not in svg and "<!DOCTYPE" not in svg
    root = ET.fromstring(svg)  # well-formed XML: every hostile character escaped
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any('<script>alert("x")</script>' in t for t in texts)  # title: text, not glyphs
    assert any("+10.0%" in t for t in texts)  # the change point's label
    assert ' width="' not in svg.split(">", 1)[0]  # sized by the page's CSS


def test_two_plots_share_no_id() -> None:
    report = hostile_report()
    one = trend_svg(report.series[0], salt="one")
    two = trend_svg(report.series[0], salt="two")
    ids_one = set(re.findall(r'\sid="([^"]+)"', one))
    ids_two = set(re.findall(r'\sid="([^"]+)"', two))
    assert ids_one and not ids_one & ids_two
    for ref in re.findall(r'(?:href="|url\()#([^")]+)', one):
        assert ref in ids_one  # every reference still points at its element


def test_timeline_has_a_panel_per_quantity_and_the_steps_named() -> None:
    report = hostile_report()
    svg = timeline_svg(report.timelines["01RUNFAILED"], [s.name for s in report.runs[0].steps],
                       salt="t")
    root = ET.fromstring(svg)
    texts = {"".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"memory GB", "power W", "CPU GHz", "MemAvailable", "power"} <= texts
    assert any(EVIL in t for t in texts)  # the step's name over its phase


def test_decimate_keeps_peaks() -> None:
    points = [(float(i), 0.0) for i in range(10_000)]
    points[4321] = (4321.0, 99.0)
    points[777] = (777.0, -5.0)
    kept = decimate(points, 200)
    assert len(kept) <= 200
    assert (4321.0, 99.0) in kept and (777.0, -5.0) in kept
    assert [p[0] for p in kept] == sorted(p[0] for p in kept)
    assert decimate(points[:50], 200) == points[:50]


def test_timeline_draws_the_hottest_zones_and_the_battery() -> None:
    zones = {f"temp_zone{i}_c": [(0.0, 30.0 + i), (1.0, 31.0 + i)] for i in range(40)}
    zones["temp_battery_c"] = [(0.0, 25.0), (1.0, 26.0)]
    svg = timeline_svg({"unet": zones}, ["unet"], salt="z")
    root = ET.fromstring(svg)
    texts = {"".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"zone39", "zone36", "battery"} <= texts and "zone35" not in texts
