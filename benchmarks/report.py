"""Report benchmark: a nightly's reports from a 3 phones x 2 recipes x 30 nights database.

The database (tests/reportdb.py): 5 measured runs + 1 warm-up per phone x recipe a night,
the last night's runs with telemetry at 2 Hz, 1024x1024 (sdxl) and 512x512 (sd15) output
PNGs and one colour-block overlay; a regression, an improvement, a failed run, two invalid
runs and a lost phone planted.

  analyse:   harness.bench.history.analyse alone (the statistics every report needs) —
             the baseline, alternating with
  collect:   the report model (analysis + runs, steps, outputs, samples),
  html, junit, md, json: each renderer on that model,
  command:   the whole `harness report --html --junit --md --json` process (Python start-up
             and imports included),

median of ``--repeat`` (wall and CPU seconds; the machine is shared, CPU time is steadier),
then the ratios to the analysis and the sizes of each output (the HTML's plots and
thumbnails apart).

    python benchmarks/report.py [--repeat 3] [--nights 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.reportdb

from harness.bench.history import analyse
from harness.report.canonical import render_json
from harness.report.collect import collect_bench, resolve_bench
from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.results.store import Store
from tests.reportdb import build


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def one_round(db: Path, out: Path, texts: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Each part once: name -> (wall s, CPU s); the rendered texts land in ``texts``."""
    times: dict[str, tuple[float, float]] = {}
    with Store.open(db) as store:
        bench = resolve_bench(store, None)
        assert bench is not None
        w, c, _ = timed(lambda: analyse(store, bench_id=bench.id))
        times["analyse"] = (w, c)
        w, c, report = timed(lambda: collect_bench(store, bench))
        times["collect"] = (w, c)
    renderers: dict[str, Callable[[Any], str]] = {
        "html": render_html, "junit": render_junit, "md": render_markdown, "json": render_json}
    for name, render in renderers.items():
        w, c, texts[name] = timed(lambda: render(report))  # noqa: B023  # called at once
        times[name] = (w, c)
    cmd = [sys.executable, "-m", "harness.cli", "report", "--db", str(db),
           "--html", str(out / "report.html"), "--junit", str(out / "junit.xml"),
           "--md", str(out / "summary.md"), "--json", str(out / "report.json")]
    w, _, _ = timed(lambda: subprocess.run(cmd, check=True, capture_output=True))
    times["command"] = (w, float("nan"))  # another process's CPU: not measured here
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--keep", type=Path, default=None, help="write the reports here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harness-reportbench-") as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        built = build(tmp / "results.sqlite", nights=args.nights, images_dir=tmp / "images")
        print(f"database: 3 phones x 2 recipes x {args.nights} nights, "
              f"{len(built.run_ids)} runs, {(tmp / 'results.sqlite').stat().st_size / 1e6:.1f}"
              f" MB, built in {time.perf_counter() - start:.1f} s")
        texts: dict[str, str] = {}
        rounds = [one_round(built.path, args.keep or tmp / "out", texts)
                  for _ in range(args.repeat)]
        med = statistics.median
        base = med(r["analyse"][0] for r in rounds)
        print(f"\n{'step':<9} {'wall s':>8} {'CPU s':>8} {'x analyse':>10}")
        for name in rounds[0]:
            wall = med(r[name][0] for r in rounds)
            cpu = med(r[name][1] for r in rounds)
            cpu_text = "–" if cpu != cpu else f"{cpu:.2f}"  # NaN: another process's CPU
            print(f"{name:<9} {wall:>8.2f} {cpu_text:>8} {wall / base:>10.1f}")
        page = texts["html"]
        svg = sum(len(m) for m in re.findall(r"<svg.*?</svg>", page, flags=re.S))
        thumbs = sum(len(m) for m in re.findall(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", page))
        print(f"\nHTML {len(page.encode()) / 1e6:.2f} MB (limit 5 MB): plots {svg / 1e6:.2f} MB "
              f"in {page.count('<svg')} SVGs, thumbnails {thumbs / 1e6:.2f} MB in "
              f"{page.count('data:image/jpeg')} JPEGs, the rest "
              f"{(len(page) - svg - thumbs) / 1e6:.2f} MB")
        for name in ("junit", "md", "json"):
            print(f"{name} {len(texts[name].encode()) / 1e3:.1f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
