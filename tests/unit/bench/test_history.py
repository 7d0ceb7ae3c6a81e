"""The bench history over a real results database (rows written as a bench writes them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from harness.bench.history import SeriesKey, analyse, is_time_metric
from harness.errors import UsageError
from harness.results.store import Store

A, B = "a1b2c3d4" + "0" * 56, "c3d4e5f6" + "1" * 56
W = "9f8e7d6c" + "2" * 56
FP1 = "google/husky/husky:14/AP1A/1:user/release-keys"
FP2 = "google/husky/husky:15/AP3A/2:user/release-keys"
DAY = 86400.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "results.sqlite") as s:
        yield s


def provenance(binary: str = A, fingerprint: str = FP1) -> dict[str, Any]:
    return {"asset_sets": {"sd15-binary": {"sd15_pipeline_run": binary},
                           "sd15-weights": {"unet.bin": W}},
            "harness_version": "0.1.0", "fingerprint": fingerprint}


class Writer:
    """Writes benches and runs the way ``harness bench`` stores them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.n = 0

    def bench(self, night: int) -> str:
        bench_id = f"B{night:04d}"
        self.store.conn.execute(
            "INSERT INTO benches (id, started_at, status, config_json) VALUES (?, ?, 'ok', '{}')",
            (bench_id, night * DAY))
        return bench_id

    def run(self, bench_id: str, night: int, total_s: float | None, *,
            serial: str = "SIM01", recipe: str = "sd15-512", validity: str = "valid",
            reason: str | None = None, warmup: bool = False,
            prov: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
            png: Path | None = None) -> str:
        self.n += 1
        run_id = f"R{self.n:06d}"
        params = params if params is not None else {"prompt": "a cat", "seed": 7, "steps": 20}
        self.store.conn.execute(
            "INSERT INTO runs (id, recipe, plan_json, params_json, serial, device_json, "
            "started_at, status, bench_id, validity, validity_reason, warmup, "
            "provenance_json) VALUES (?, ?, '{}', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, recipe, json.dumps(params, sort_keys=True), serial,
             json.dumps({"model": "Pixel 8 Pro"}), night * DAY + self.n,
             "ok" if validity != "failed" else "failed", bench_id, validity, reason,
             int(warmup), json.dumps(prov or provenance())))
        if total_s is not None:
            for name, value in (("total_s", total_s), ("s/step", total_s / 20), ("steps", 20)):
                self.store.conn.execute("INSERT INTO metrics VALUES (?, 'pipeline', ?, ?)",
                                        (run_id, name, value))
        if png is not None:
            self.store.conn.execute(
                "INSERT INTO outputs (run_id, step, name, device_path, kind, shape_json, "
                "png_path) VALUES (?, 'pipeline', 'image', '/x', 'image', '[1,3,64,64]', ?)",
                (run_id, str(png)))
        return run_id


def nightly(store: Store, nights: int, *, slow_from: int | None = None, factor: float = 1.05,
            prov_from: dict[str, Any] | None = None, runs: int = 5,
            seed: int = 3) -> list[str]:
    """``nights`` nights of 5 valid runs with 1 % noise; slower from ``slow_from``."""
    rng = np.random.default_rng(seed)
    w = Writer(store)
    ids = []
    for t in range(nights):
        bench_id = w.bench(t)
        ids.append(bench_id)
        late = slow_from is not None and t >= slow_from
        level = 9.2 * (factor if late else 1.0) * float(np.exp(rng.normal(0, 0.003)))
        w.run(bench_id, t, level * 1.3, warmup=True)
        for _ in range(runs):
            w.run(bench_id, t, level * float(np.exp(rng.normal(0, 0.01))),
                  prov=prov_from if late else None)
    return ids


def test_time_metrics_are_the_figures_with_a_time_unit() -> None:
    assert [is_time_metric(n) for n in ("total_s", "s/step", "unet.init_s", "clip.ms",
                                        "s/it", "ms/step", "vae.us")] == [True] * 7
    assert [is_time_metric(n) for n in ("steps", "iters", "warmup", "unet.status")] == [
        False] * 4


def test_an_empty_store_has_no_history(store: Store) -> None:
    result = analyse(store)
    assert (result.series, result.findings, result.bench_id) == ((), (), None)


def test_noise_alone_finds_nothing(store: Store) -> None:
    ids = nightly(store, 16)
    result = analyse(store)
    assert result.findings == ()
    assert result.bench_id == ids[-1]
    keys = {s.key for s in result.series}
    assert SeriesKey("Pixel 8 Pro", "SIM01", "sd15-512", "pipeline/total_s") in keys
    assert not any(k.metric.endswith("/steps") for k in keys), "counts are not series"
    total = next(s for s in result.series if s.key.metric == "pipeline/total_s")
    assert len(total.nights) == 16 and all(len(n.valid) == 5 for n in total.nights)
    assert total.alert is not None and not total.alert.alerted
    assert total.summary is not None and total.summary.n == 5


def test_a_slower_build_is_flagged_and_attributed(store: Store) -> None:
    ids = nightly(store, 16, slow_from=14, prov_from=provenance(binary=B))
    result = analyse(store)
    total = [f for f in result.findings if f.key.metric == "pipeline/total_s"]
    assert len(total) == 1
    finding = total[0]
    assert finding.kind == "regression"
    assert finding.first_bad_bench == ids[14] and finding.last_good_bench == ids[13]
    assert finding.changes == ("sd15-binary changed: sd15_pipeline_run a1b2c3d4 -> c3d4e5f6",)
    assert finding.relative_change == pytest.approx(0.05, abs=0.015)
    assert finding.p_value is not None and finding.p_value <= 0.01
    assert "regression +" in finding.detail and ids[14] in finding.detail


def test_one_slow_night_is_not_yet_an_alert(store: Store) -> None:
    nightly(store, 15, slow_from=14, prov_from=provenance(binary=B))
    assert analyse(store).findings == ()


def test_a_late_alert_is_attributed_to_the_night_the_change_came(store: Store) -> None:
    ids = nightly(store, 17, slow_from=14, prov_from=provenance(binary=B))
    findings = [f for f in analyse(store).findings if f.key.metric == "pipeline/total_s"]
    assert findings and findings[0].first_bad_bench == ids[14]


def test_an_os_update_is_named(store: Store) -> None:
    nightly(store, 16, slow_from=14, prov_from=provenance(fingerprint=FP2))
    finding = analyse(store).findings[0]
    assert finding.changes == (f"phone OS update: {FP1} -> {FP2}",)


def test_invalid_runs_are_kept_and_never_counted(store: Store) -> None:
    ids = nightly(store, 16)
    w = Writer(store)
    w.n = 10_000
    for t in (14, 15):
        for _ in range(4):
            w.run(ids[t], t, 9.2 * 1.2, validity="throttled", reason="thermal status 2")
    w.run(ids[15], 15, None, validity="failed", reason="OOM: lmkd killed the UNet")
    result = analyse(store)
    assert result.findings == ()
    total = next(s for s in result.series if s.key.metric == "pipeline/total_s")
    last = total.nights[-1]
    assert len(last.valid) == 5 and len(last.invalid) == 5
    assert last.invalid[0][2] == "throttled: thermal status 2"
    assert last.invalid[-1][1:] == (None, "failed: OOM: lmkd killed the UNet")


def test_bench_id_cuts_the_history_there(store: Store) -> None:
    ids = nightly(store, 18, slow_from=14, prov_from=provenance(binary=B))
    early = analyse(store, bench_id=ids[13])
    assert early.findings == () and early.bench_id == ids[13]
    assert len(early.series[0].nights) == 14
    assert analyse(store, bench_id=ids[15]).findings
    assert len(analyse(store, max_nights=5).series[0].nights) == 5
    with pytest.raises(UsageError, match="no bench 'nope'"):
        analyse(store, bench_id="nope")


def test_two_parameter_sets_are_two_series(store: Store) -> None:
    w = Writer(store)
    bench_id = w.bench(0)
    w.run(bench_id, 0, 9.0, params={"seed": 1, "steps": 20})
    w.run(bench_id, 0, 2.0, params={"seed": 1, "steps": 4})
    variants = {s.key.variant for s in analyse(store).series}
    assert variants == {"steps=20", "steps=4"}


def _png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def test_output_drift_is_a_quality_finding_while_timing_is_fine(store: Store,
                                                                tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    drifted = base.copy()
    drifted[8:40, 8:40] = 128  # a flat colour block, as reused TNN buffers make
    good, bad = _png(tmp_path / "good.png", base), _png(tmp_path / "bad.png", drifted)
    w = Writer(store)
    ids = []
    for t in range(8):
        ids.append(w.bench(t))
        prov = provenance(binary=B) if t >= 6 else None
        for _ in range(3):
            w.run(ids[-1], t, 9.2, png=bad if t >= 6 else good, prov=prov)
    result = analyse(store)
    assert [f.kind for f in result.findings] == ["quality"]
    finding = result.findings[0]
    assert finding.key.metric == "pipeline/image.ssim"
    assert finding.first_bad_bench == ids[6] and finding.last_good_bench == ids[5]
    assert finding.median_before == 1.0 and finding.median_after < 0.98
    assert finding.changes == ("sd15-binary changed: sd15_pipeline_run a1b2c3d4 -> c3d4e5f6",)
    assert "output drifted" in finding.detail
    quality = next(s for s in result.series if s.key.metric.endswith(".ssim"))
    assert quality.nights[0].valid == (1.0, 1.0, 1.0)


def test_no_fixed_seed_no_quality_series(store: Store, tmp_path: Path) -> None:
    png = _png(tmp_path / "a.png", np.zeros((32, 32, 3), dtype=np.uint8))
    w = Writer(store)
    bench_id = w.bench(0)
    w.run(bench_id, 0, 9.2, params={"prompt": "a cat", "seed": None}, png=png)
    assert not any(s.key.metric.endswith(".ssim") for s in analyse(store).series)
