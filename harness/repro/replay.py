"""``harness replay``: a bundle's plan again on another phone, shown next to the original.

1. The bundle is read and checked (:func:`harness.repro.bundle.read_bundle`).
2. Assets: the other phone's sync manifests must record the bundle's digests for every set
   the plan uses; if they do not, this host's asset sets are scanned and, when they hold
   exactly the bundle's files, the run syncs them as ``harness run`` does; when they differ
   too, the replay is refused (:class:`AssetMismatch`, naming the set and a file) before
   anything runs.
3. The same plan runs through the ordinary run path (lint findings forced: a bundle may
   reproduce a failure on purpose; the plan's RAM requirement is not enforced: replaying a
   16 GB phone's run on an 8 GB one to see it fail is the point, and is said as a warning).
4. Both sides: verdict, status, step times, ``[Perf]`` figures, RAM, peak memory and energy
   (from telemetry metrics when the run has them, else from its samples).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.device.facts import Requirements, marketed_ram_gb
from harness.repro.bundle import Bundle, read_bundle
from harness.repro.digests import (
    AssetMismatch,
    differing,
    local_digests,
    phone_digests,
)
from harness.repro.verdict import classify
from harness.results.runextras import Sample, samples, set_provenance
from harness.results.store import Store
from harness.run.runner import RunEvents, RunRequest, pick_device, run_plan

PEAK_NAMES = ("hwm_kb", "rss_kb")  # the step's process tree, canonical sample names


@dataclass(frozen=True)
class Side:
    label: str
    run_id: str | None
    serial: str | None
    model: str
    ram: str  # "8 GB (MemTotal 7.19 GiB)"
    status: str
    verdict: str  # the detectors' kind
    detail: str
    steps: dict[str, float | None]  # step -> seconds
    exit_codes: dict[str, int | None]
    metrics: dict[str, float]  # "step.name" -> value
    peak_rss_kb: float | None
    min_mem_available_kb: float | None
    energy_j: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReplayResult:
    bundle: Path
    assets: str  # how the assets were made right: "on the phone" / "synced from this host"
    original: Side
    replay: Side
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "assets": self.assets,
                "original": self.original.to_dict(), "replay": self.replay.to_dict(),
                "warnings": list(self.warnings)}


def _ram(device: dict[str, Any]) -> str:
    total = device.get("mem_total_kb")
    gb = device.get("marketed_ram_gb") or marketed_ram_gb(total)
    if not total:
        return "unknown"
    return f"{gb} GB (MemTotal {total / 1048576:.2f} GiB)"


def _parse_samples(text: str | None) -> list[Sample]:
    if not text:
        return []
    rows = csv.DictReader(io.StringIO(text))
    out = []
    for row in rows:
        try:
            out.append(Sample(row["step"], float(row["t"]), row["name"], float(row["value"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _from_metrics(metrics: dict[str, float], words: Sequence[str]) -> float | None:
    found = [v for k, v in metrics.items() if all(w in k for w in words)]
    return max(found) if found else None


def telemetry(metrics: dict[str, float], rows: Sequence[Sample]) -> tuple[
        float | None, float | None, float | None]:
    """(peak RSS kB, minimum MemAvailable kB, energy J): telemetry metrics first (the
    sampler's reductions), else computed from the samples (energy: power integrated over
    each step's sample times, trapezoid rule)."""
    peak = _from_metrics(metrics, ("peak", "rss"))
    energy = _from_metrics(metrics, ("energy",))
    floor = None
    if peak is None:
        values = [r.value for r in rows if r.name in PEAK_NAMES]
        peak = max(values) if values else None
    avail = [r.value for r in rows if r.name == "mem_available_kb"]
    floor = min(avail) if avail else None
    if energy is None:
        by_step: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            if r.name == "power_w":
                by_step.setdefault(r.step, []).append((r.t, r.value))
        total = 0.0
        for points in by_step.values():
            points.sort()
            total += sum((t1 - t0) * (p0 + p1) / 2
                         for (t0, p0), (t1, p1) in itertools.pairwise(points))
        energy = total if by_step else None
    return peak, floor, energy


def original_side(bundle: Bundle) -> Side:
    v = bundle.verdicts
    detected = v.get("detected") or {}
    metrics = {f"{step}.{name}": value for step, values in (v.get("metrics") or {}).items()
               for name, value in values.items()}
    peak, floor, energy = telemetry(metrics, _parse_samples(bundle.samples_csv))
    steps = v.get("steps") or []
    return Side("original", bundle.manifest["run"].get("id"), v.get("serial"),
                str(bundle.device.get("model") or ""), _ram(bundle.device),
                str(v.get("status")), str(detected.get("kind", "?")),
                str(detected.get("detail", "")),
                {s["name"]: s.get("seconds") for s in steps},
                {s["name"]: s.get("exit_code") for s in steps}, metrics, peak, floor, energy)


def _replay_side(run_id: str, db_path: Path | None) -> Side:
    from harness.repro.verdict import summary_of

    with Store.open(db_path) as store:
        detail = store.get_run(run_id)
        rows = samples(store, run_id)
    verdict = classify(summary_of(detail))
    device = detail.run.device or {}
    peak, floor, energy = telemetry(verdict.metrics, rows)
    return Side("replay", run_id, detail.run.serial, str(device.get("model") or ""),
                _ram(device), detail.run.status, verdict.kind, verdict.detail,
                {s.name: s.seconds for s in detail.steps},
                {s.name: s.exit_code for s in detail.steps}, verdict.metrics, peak, floor,
                energy)


def check_assets(bundle: Bundle, phone: dict[str, dict[str, str]],
                 local: Callable[[], dict[str, dict[str, str]]]) -> bool:
    """True: the phone has the bundle's assets; False: sync this host's (which match);
    AssetMismatch when neither holds them (``local`` is only scanned when needed)."""
    if not differing(bundle.assets, phone):
        return True
    bad = differing(bundle.assets, local())
    if bad:
        name, paths = next(iter(bad.items()))
        raise AssetMismatch(
            f"asset set {name} on this host differs from the bundle's ({len(paths)} file(s), "
            f"e.g. {paths[0]}) and the phone does not have the bundle's either: refusing to "
            "replay with other assets",
            hint=f"point assets.{name}.root in $HARNESS_HOME/config.yaml at the files the "
                 "bundle's run used")
    return False


def replay(bundle_path: Path, base: RunRequest,
           events: RunEvents | None = None) -> ReplayResult:
    events = events or RunEvents()
    bundle = read_bundle(bundle_path)
    plan = bundle.plan
    warnings = []
    device = pick_device(base, replace(plan, requirements=Requirements()))
    facts = device.facts()
    needs = plan.requirements.min_ram_gb
    if needs and facts.marketed_ram_gb is not None and facts.marketed_ram_gb < needs:
        warnings.append(f"{device.serial} has {facts.marketed_ram_gb} GB of RAM; the plan "
                        f"asks for {needs:g} GB: replaying anyway, to see what happens")
    names = list(plan.asset_sets)
    on_phone = check_assets(bundle, phone_digests(device, names),
                            lambda: local_digests(names, base.recipes_dirs))
    for text in warnings:  # only once the replay will really run
        events.warning(text)
    request = replace(base, selector=device.serial, force=True, sync=not on_phone)
    summary = run_plan(replace(plan, requirements=Requirements()), request, events)
    with Store.open(base.db_path) as store:
        set_provenance(store, summary.run_id, {"asset_sets": bundle.assets,
                                               "replay_of": bundle.manifest["run"].get("id")})
    return ReplayResult(bundle_path, "on the phone" if on_phone else "synced from this host",
                        original_side(bundle), _replay_side(summary.run_id, base.db_path),
                        tuple(warnings))


__all__ = ["ReplayResult", "Side", "check_assets", "original_side", "replay", "telemetry"]
