"""Reports built by hand (every field chosen, hostile strings where text goes) and small
synthetic nightlies (tests/reportdb.py) for the renderer tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.report.model import (
    BenchView,
    ChangeMark,
    EventView,
    Finding,
    InvalidPoint,
    Night,
    OutputView,
    Phone,
    PhoneRow,
    Report,
    RunView,
    Series,
    SeriesKey,
    StepView,
    Summary,
    Telemetry,
)
from harness.results.store import Store
from tests.reportdb import BuiltDb, build

EVIL = '<script>alert("x")</script>&<img src=x onerror=alert(1)>|*_`~[a](b) $x^2$ {{ 7*7 }}'
CONTROL = "bad\x00byte\x1b[31m"


def hostile_report(*, findings: bool = True) -> Report:
    """A bench report with hostile text in every field a phone or a recipe author controls."""
    key = SeriesKey(model=f"Phone {EVIL}", serial=f"SER{EVIL}", recipe=f"recipe{EVIL}",
                    metric=f"step/{EVIL}")
    nights = tuple(Night(f"B{i:02d}", 1_780_000_000.0 + i * 86_400, (1.0 + (i >= 8) * 0.1,
                                                                     1.01, 0.99),
                         (InvalidPoint("RUNX", 1.5, f"throttled: {EVIL}"),) if i == 3 else ())
                   for i in range(10))
    finding = Finding(key, "regression", "slower: alerted", 1.0, 1.1, 0.1, 1e-7, "B07", "B08",
                      (f"sdxl-binaries changed: {EVIL}", f"phone OS update: {CONTROL}"),
                      f"detail {EVIL}")
    run = RunView(
        id="01RUNFAILED", serial=key.serial, model=key.model, recipe=key.recipe,
        status="failed", validity="failed", validity_reason=f"reason {EVIL}", repeat_idx=0,
        warmup=False, started_at=1_780_800_000.0, seconds=12.5, verdicts=(f"verdict {EVIL}",),
        diagnosis=f"OOM {EVIL} {CONTROL}", run_dir=f"logs/{EVIL}",
        metrics={f"step/{EVIL}": 1.1},
        steps=(StepView(0, f"step{EVIL}", None, 9, 12.5, f"killed {EVIL}",
                        f"[Perf] {EVIL}\n" * 3, f"lmkd {EVIL} {CONTROL}"),),
        outputs=(OutputView("vae", f"image{EVIL}", "image", (1, 3, 8, 8), None, None, 0, 0),),
        conditions={"note": EVIL, "caps_khz": {"cpu7": 1_401_600}},
        telemetry=Telemetry(samples=4, min_mem_available_kb=1e6, peak_rss_kb=2e6,
                            mean_power_w=5.0, peak_power_w=7.0, max_temp_c={"temp_cpu_c": 44.0},
                            min_cap_khz={"cpu7_max_khz": 1_401_600.0}))
    invalid = dataclasses.replace(run, id="01RUNHOT", status="ok", validity="hot-start",
                                  diagnosis=None)
    return Report(
        title=f"bench {EVIL}", generated_at=1_780_900_000.0, harness_version="0.1.0",
        bench=BenchView("01BENCH", "regressed", 1_780_800_000.0, None, f"host{EVIL}", "0.1.0",
                        None, None),
        findings=(finding,) if findings else (),
        series=(Series(key, nights, (ChangeMark(8, "B08", "regression", 0.1, 1e-7, "nightly",
                                                True),),
                       Summary(3, 1.1, 1.05, 1.12, 0.99, 1.12, 0.05, 0.04, "stable")),),
        phones=(Phone(key.serial, key.model, (PhoneRow(key.recipe, key.metric, 3, 1.1, 0.05,
                                                       0.04, "stable"),), 2, 1, 1),),
        runs=(run, invalid),
        events=(EventView(1_780_800_100.0, key.serial, key.recipe, "lost",
                          {"reason": f"offline {EVIL}"}),),
        notes=(f"note {EVIL}",),
        timelines={"01RUNFAILED": {f"step{EVIL}": {"mem_available_kb": [(0.0, 5e6), (1.0, 4e6)],
                                                   "power_w": [(0.0, 2.0), (1.0, 6.0)]}}})


@pytest.fixture(scope="session")
def small_nightly(tmp_path_factory: pytest.TempPathFactory) -> BuiltDb:
    """12 nights x 3 phones x 2 recipes, 5 runs a night; the regression of the last two
    nights is planted (see tests/reportdb.py); no pictures."""
    return build(tmp_path_factory.mktemp("small-nightly") / "results.sqlite", nights=12)


@pytest.fixture
def empty_store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "empty.sqlite")
    return store


def fail_everything(path: Path, bench_id: str) -> None:
    """Turn every run of ``bench_id`` into a failed one without figures (a night of crashes)."""
    with Store.open(path) as store:
        store.conn.execute("UPDATE runs SET status = 'failed', validity = 'failed', "
                           "validity_reason = 'the run failed', diagnosis = 'crashed' "
                           "WHERE bench_id = ?", (bench_id,))
        store.conn.execute("DELETE FROM metrics WHERE run_id IN (SELECT id FROM runs WHERE "
                           "bench_id = ?)", (bench_id,))
