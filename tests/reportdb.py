"""A synthetic results database of a nightly: phones x recipes x nights, as benches write it.

Used by the report tests and ``benchmarks/report.py``. Every night is one bench (a
``benches`` row, its runs with validity, repeat index, warm-up, provenance and conditions,
its ``bench_events``); the last nights' runs have telemetry samples, output PNGs (one with
real colour blocks and the detector's overlay) and step logs. What is planted, so tests can
look for it:

- a regression: phone 0, ``sdxl-1024`` ``unet/unet.s/step`` +8 % from night ``nights - 2``,
  the night ``sdxl-binaries``' ``sdxl_pipeline_run`` digest changes;
- an improvement: phone 1, ``sd15-512`` ``sd15/s/step`` -6 % from night ``nights // 2``, the
  night phone 1's OS build changes;
- on the last night: a failed run (phone 2, the first recipe: OOM, lmkd lines in its log;
  ``diagnosis_text`` replaces its diagnosis), a throttled and a hot-start run (phone 1), a
  lost phone (phone 2 during the last recipe: ``bench_events`` kind ``lost``), an output
  with colour blocks (phone 0, the last recipe).

Rows are written with SQL (the bench writers are another branch's); the schema is the
store's own (``Store.open`` migrates the new file).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.results.store import Store, new_run_id
from harness.run.blocks import find_image_blocks, write_overlay

NIGHT_S = 86_400.0
START_S = 1_780_000_000.0  # a fixed night 0 (2026-05-28), so ids and plots are repeatable
PHONES = (("R5CW30SIM0A", "Galaxy S24 Ultra", "SM8650"),
          ("R5CW30SIM0B", "Galaxy S23", "SM8550"),
          ("R5CW30SIM0C", "Xperia 1 IV", "SM8450"))
# recipe -> step -> metric -> value on phone 0 (others scale by their SoC speed)
RECIPES: dict[str, dict[str, dict[str, float]]] = {
    "sd15-512": {"sd15": {"s/step": 0.42, "total_s": 9.1}},
    "sdxl-1024": {"unet": {"unet.s/step": 1.92, "init_s": 6.4}, "vae": {"s/it": 2.6}},
}
SPEED = (1.0, 1.18, 1.45)


@dataclass
class BuiltDb:
    path: Path
    bench_ids: list[str]
    run_ids: list[str] = field(default_factory=list)
    failed_run: str = ""
    blocks_run: str = ""
    regression: tuple[str, str, str] = ("", "", "")  # serial, recipe, metric
    improvement: tuple[str, str, str] = ("", "", "")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _picture(side: int, seed: int, blocks: bool) -> np.ndarray:
    """A smooth synthetic picture (uint8 HWC); with ``blocks``, flat tiles on a 32 grid."""
    y, x = np.mgrid[0:side, 0:side] / side
    phase = seed * 0.7
    rgb = np.stack([0.5 + 0.4 * np.sin(6 * x + phase + 3 * y),
                    0.5 + 0.4 * np.cos(5 * y - phase + 2 * x * y),
                    0.5 + 0.4 * np.sin(4 * (x + y) + phase)], axis=-1)
    rng = np.random.default_rng(seed)
    rgb += rng.normal(0, 0.03, rgb.shape)
    img: np.ndarray = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    if blocks:
        tile = side // 16
        for i, j in ((10, 3), (10, 4), (11, 3), (12, 9), (13, 9), (13, 10), (14, 12)):
            img[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = ((i * 53) % 255, 0, 255)
    return img


def _samples(run_id: str, steps: list[tuple[str, float]], rng: random.Random,
             hot: bool) -> list[tuple[str, str, float, str, float]]:
    """Telemetry of one run at 2 Hz: memory, power, temperatures, frequencies and caps."""
    rows: list[tuple[str, str, float, str, float]] = []
    for step, seconds in steps:
        peak_kb = 9.5e6 if step != "vae" else 5.2e6
        for i in range(int(seconds * 2) + 1):
            t = i / 2.0
            ramp = min(1.0, t / 4.0)
            rss = peak_kb * ramp * (0.97 + 0.03 * rng.random())
            cap = 1_401_600.0 if hot and t > seconds / 2 else 3_302_400.0
            values = {
                "mem_available_kb": 15.4e6 - rss - 4e5 * rng.random(),
                "rss_kb": rss, "hwm_kb": peak_kb * ramp, "swap_kb": 0.0,
                "power_w": 2.0 + 6.5 * ramp + rng.gauss(0, 0.4),
                "temp_cpu_c": 34.0 + 12 * ramp * (1.3 if hot else 1.0) + rng.random(),
                "temp_battery_c": 30.5 + 2.0 * t / max(seconds, 1.0),
                "cpu0_cur_khz": 1_785_600.0, "cpu0_max_khz": 2_265_600.0,
                "cpu7_cur_khz": min(cap, 3_302_400.0 * (0.8 + 0.2 * rng.random())),
                "cpu7_max_khz": cap,
                "gpu_busy_pct": 95.0 * ramp,
            }
            rows.extend((run_id, step, t, name, float(v)) for name, v in values.items())
    return rows


@dataclass
class _Night:
    index: int
    bench_id: str
    at: float
    last: bool


def _metric_value(rng: random.Random, phone: int, recipe: str, step: str, name: str,
                  base: float, night: int, nights: int) -> float:
    value = base * SPEED[phone] * math.exp(rng.gauss(0, 0.012))
    if (phone, recipe, step, name) == (0, "sdxl-1024", "unet", "unet.s/step") and \
            night >= nights - 2:
        value *= 1.08
    if (phone, recipe, step, name) == (1, "sd15-512", "sd15", "s/step") and night >= nights // 2:
        value *= 0.94
    return value


def build(path: Path, *, nights: int = 30, runs: int = 5, seed: int = 7,
          images_dir: Path | None = None, image_nights: int = 1, sample_nights: int = 1,
          recipes: dict[str, dict[str, dict[str, float]]] | None = None,
          diagnosis_text: str | None = None) -> BuiltDb:
    """Write the database at ``path`` (see the module docstring); returns what it holds."""
    recipes = recipes or RECIPES
    rng = random.Random(seed)
    built = BuiltDb(path, [])
    built.regression = (PHONES[0][0], "sdxl-1024", "unet/unet.s/step")
    built.improvement = (PHONES[1][0], "sd15-512", "sd15/s/step")
    with Store.open(path) as store:
        conn = store.conn
        conn.execute("BEGIN IMMEDIATE")
        for night in range(nights):
            at = START_S + night * NIGHT_S
            bench = _Night(night, new_run_id(at), at, night == nights - 1)
            built.bench_ids.append(bench.bench_id)
            status = "regressed" if night >= nights - 2 else "ok"
            conn.execute("INSERT INTO benches (id, started_at, ended_at, status, config_json, "
                         "host, harness_version) VALUES (?, ?, ?, ?, ?, 'lab-host', '0.1.0')",
                         (bench.bench_id, at, at + 3600, status,
                          json.dumps({"recipes": list(recipes), "repeats": runs})))
            _night(conn, built, bench, rng, nights=nights, runs=runs, recipes=recipes,
                   images_dir=images_dir if night >= nights - image_nights else None,
                   with_samples=night >= nights - sample_nights,
                   diagnosis_text=diagnosis_text)
        conn.execute("COMMIT")
    return built


def _provenance(phone: int, night: int, nights: int) -> dict[str, Any]:
    binary = "build-2" if night >= nights - 2 else "build-1"
    fingerprint = (f"samsung/{PHONES[phone][2].lower()}/{'15/AP4A' if phone == 1 and night >= nights // 2 else '14/UP1A'}"
                   ":user/release-keys")
    return {"asset_sets": {"sdxl-binaries": {"sdxl_pipeline_run": _digest(binary),
                                             "sdxl_vae_decoder_run": _digest("vae-1")},
                           "sd15-weights": {"unet.bin": _digest("sd15-unet")}},
            "harness_version": "0.1.0", "fingerprint": fingerprint}


def _night(conn: Any, built: BuiltDb, bench: _Night, rng: random.Random, *, nights: int,
           runs: int, recipes: dict[str, dict[str, dict[str, float]]],
           images_dir: Path | None, with_samples: bool, diagnosis_text: str | None) -> None:
    t = bench.at + 60
    for phone, (serial, model, soc) in enumerate(PHONES):
        device = {"model": model, "soc": soc, "serial": serial, "ram_gb": 16}
        for recipe, steps in recipes.items():
            if bench.last and phone == 2 and recipe == list(recipes)[-1]:
                conn.execute("INSERT INTO bench_events (bench_id, seq, at, serial, recipe, "
                             "kind, detail_json) VALUES (?, 1, ?, ?, ?, 'lost', ?)",
                             (bench.bench_id, t, serial, recipe, json.dumps(
                                 {"reason": f"{serial} went offline during {recipe} and did "
                                            "not come back within 120 s"})))
                continue
            for repeat in range(-1, runs):  # -1: the warm-up run
                t += 45
                _one_run(conn, built, bench, rng, t=t, phone=phone, serial=serial,
                         device=device, recipe=recipe, steps=steps, repeat=repeat,
                         nights=nights, images_dir=images_dir, with_samples=with_samples,
                         diagnosis_text=diagnosis_text, first=recipe == next(iter(recipes)),
                         last=recipe == list(recipes)[-1], failing=min(3, runs - 1))


def _read(hot: bool, after: bool) -> dict[str, Any]:
    """One conditions read as harness bench records it (harness.bench.conditions)."""
    zones = {f"cpu-{i}-0-0": 35.5 + i + (12 if after else 0) + (6 if hot else 0)
             for i in range(8)} | {"battery": 31.0 + (2.4 if after else 0)}
    clusters = [{"policy": f"policy{p}", "max_khz": mx, "cap_khz": 1_401_600 if hot and p == 7
                 else mx, "time_in_state": {str(mx): 1000 + (2000 if after else 0)}}
                for p, mx in ((0, 2_265_600), (7, 3_302_400))]
    return {"thermal_status": (3 if hot else 0) if after else 0, "battery_level": 80,
            "battery_c": 36.2 if hot and not after else 31.0 + (2.4 if after else 0),
            "charging": False, "zones": zones, "clusters": clusters}


def _conditions(hot: bool) -> dict[str, Any]:
    return {"series": "x", "before": _read(hot, False), "after": _read(hot, True),
            "cool_wait": {"waited_s": 12.0, "limit_s": 600},
            "clusters": [{"policy": "policy0", "top_khz": 2_265_600, "max_khz": 2_265_600,
                          "cap_khz": 2_265_600, "seconds_by_khz": {"2265600": 20.0}},
                         {"policy": "policy7", "top_khz": 1_401_600 if hot else 3_302_400,
                          "max_khz": 3_302_400, "cap_khz": 1_401_600 if hot else 3_302_400,
                          "seconds_by_khz": {"3302400": 20.0}}],
            "limits": {"battery_c": 35.0, "cpu_c": 38.0, "run_cpu_c": 60.0}}


def _one_run(conn: Any, built: BuiltDb, bench: _Night, rng: random.Random, *, t: float,
             phone: int, serial: str, device: dict[str, Any], recipe: str,
             steps: dict[str, dict[str, float]], repeat: int, nights: int,
             images_dir: Path | None, with_samples: bool, diagnosis_text: str | None,
             first: bool, last: bool, failing: int) -> None:
    run_id = new_run_id(t)
    built.run_ids.append(run_id)
    status, validity, reason, diagnosis = "ok", "valid", None, None
    failed = bench.last and phone == 2 and first and repeat == failing
    hot = bench.last and phone == 1 and repeat == 2
    if failed:
        status, validity = "failed", "failed"
        diagnosis = diagnosis_text or ("sd15 killed by lmkd (out of memory): rss 7.9 GB, "
                                       "MemAvailable 310 MB at the kill")
        reason = "the run failed"
        built.failed_run = run_id
    elif hot:
        validity = "throttled" if last else "hot-start"
        reason = ("cpu7 capped at 1.40 GHz by thermal status 3 during the run"
                  if validity == "throttled" else "battery 36.2 °C at the start (limit 35 °C)")
    elif rng.random() < 0.02:
        validity, reason = "throttled", "thermal status 2 (moderate) during the run"
    conn.execute(
        "INSERT INTO runs (id, recipe, plan_json, params_json, serial, device_json, host, "
        "harness_version, started_at, ended_at, status, verdict, diagnosis, run_dir, bench_id, "
        "validity, validity_reason, repeat_idx, warmup, provenance_json, conditions_json, "
        "temps_before_json, temps_after_json) VALUES "
        "(?, ?, '{}', '{}', ?, ?, 'lab-host', '0.1.0', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, recipe, serial, json.dumps(device), t, t + 40, status,
         diagnosis, diagnosis, f"logs/{run_id}", bench.bench_id, validity, reason,
         max(repeat, 0), int(repeat < 0), json.dumps(_provenance(phone, bench.index, nights)),
         json.dumps(_conditions(hot)),
         json.dumps({"battery_c": 31.0, "zones": {"cpu-1-0-0": 35.5}}),
         json.dumps({"battery_c": 33.4, "zones": {"cpu-1-0-0": 47.1}})))
    step_seconds = []
    for idx, (step, metrics) in enumerate(steps.items()):
        values = {name: _metric_value(rng, phone, recipe, step, name, base, bench.index,
                                      nights) for name, base in metrics.items()}
        seconds = 20.0 + 10 * idx
        step_seconds.append((step, seconds))
        dead = failed and idx == len(steps) - 1
        perf = "\n".join(f"[Perf] {name}={v:.4f}" for name, v in values.items())
        conn.execute("INSERT INTO steps (run_id, idx, name, command, exit_code, signal, "
                     "seconds, stdout_tail, stderr_tail, diagnosis) VALUES "
                     "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (run_id, idx, step, f"cd /data/local/tmp && ./{step}_run", None if dead
                      else 0, 9 if dead else None, seconds, perf if not dead else
                      "[Perf] loading weights\n[Perf] step 1/20", "lowmemorykiller: Kill "
                      "'sd15_pipeline_run' (12345), uid 2000, oom_score_adj 0 to free "
                      "7900000kB" if dead else "", diagnosis if dead else None))
        if not dead:
            conn.executemany("INSERT INTO metrics (run_id, step, name, value) "
                             "VALUES (?, ?, ?, ?)",
                             [(run_id, step, name, v) for name, v in values.items()])
    if with_samples:
        conn.executemany("INSERT INTO samples (run_id, step, t, name, value) "
                         "VALUES (?, ?, ?, ?, ?)", _samples(run_id, step_seconds, rng, hot))
    if images_dir is not None and not failed:
        _output(conn, built, run_id, recipe, images_dir, seed=len(built.run_ids),
                blocks=bench.last and phone == 0 and last and repeat == 1)


def _output(conn: Any, built: BuiltDb, run_id: str, recipe: str, images_dir: Path, *,
            seed: int, blocks: bool) -> None:
    side = 512 if recipe == "sd15-512" else 1024
    step = "sd15" if recipe == "sd15-512" else "vae"
    images_dir.mkdir(parents=True, exist_ok=True)
    png = images_dir / f"{run_id}-image.png"
    pixels = _picture(side, seed, blocks)
    Image.fromarray(pixels).save(png, compress_level=1)
    if blocks:
        report = find_image_blocks(pixels)
        assert report.boxes, "the planted colour blocks must be found by the detector"
        write_overlay(report, png, png.with_suffix(".blocks.png"))
        built.blocks_run = run_id
    conn.execute("INSERT INTO outputs (run_id, step, name, device_path, local_path, kind, "
                 "shape_json, nan_count, inf_count, png_path) VALUES "
                 "(?, ?, 'image', ?, ?, 'image', ?, 0, 0, ?)",
                 (run_id, step, f"/data/local/tmp/output/{step}_out.qfp32",
                  str(png.with_suffix(".qfp32")), json.dumps([1, 3, side, side]), str(png)))
