"""Pages for the reproduction tools: a sweep's contact sheet, a replay side by side.

Both read what ``harness repro sweep`` and ``harness replay`` leave behind, as JSON, not
their code (the report renders files, whoever wrote them):

- a sweep folder's ``sweep.json`` (its ``format`` 1: recipe, serial, repeat, axes
  ``[{var, values}]``, cells ``[{index, settings, verdict, label, seconds_median, runs:
  [{kind, detail, run_id, seconds, image, ...}]}]``, ``sheet``) and its ``sheet.png``;
- the JSON ``harness replay --json`` prints (``{bundle, assets, original, replay,
  warnings}``, each side ``{label, run_id, serial, model, ram, status, verdict, detail,
  steps, exit_codes, metrics, peak_rss_kb, min_mem_available_kb, energy_j}``); with the
  store at hand each side's run adds its output thumbnails.

A file that is not such JSON is a one-line :class:`~harness.errors.UsageError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.report.thumbs import thumbnail_uri
from harness.results.store import Store

SWEEP_FORMATS = (1,)
SHEET_SIDE_PX = 1600  # the contact sheet is shown whole, at most this wide


@dataclass(frozen=True)
class SweepCell:
    index: int
    settings: dict[str, str]
    verdict: str
    label: str
    seconds_median: float | None
    runs: tuple[dict[str, Any], ...]
    thumb: str | None  # the first run's image, as a data: URI


@dataclass(frozen=True)
class SweepView:
    recipe: str
    serial: str
    repeat: int
    axes: tuple[tuple[str, tuple[str, ...]], ...]
    cells: tuple[SweepCell, ...]
    sheet: str | None  # the contact sheet as a data: URI
    source: str


@dataclass(frozen=True)
class ReplaySide:
    label: str
    data: dict[str, Any]
    pictures: tuple[tuple[str, str], ...] = ()  # (output, data: URI)


@dataclass(frozen=True)
class ReplayView:
    bundle: str
    assets: str
    original: ReplaySide
    replay: ReplaySide
    warnings: tuple[str, ...]
    metrics: tuple[tuple[str, float | None, float | None], ...] = field(default=())
    source: str = ""


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not the {what} (not JSON: {exc})") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not the {what} (a JSON object is expected)")
    return data


def load_sweep(where: Path, *, thumbnails: bool = True) -> SweepView:
    """A sweep's view from its folder (or its ``sweep.json``)."""
    path = where / "sweep.json" if where.is_dir() else where
    data = _read_json(path, "sweep.json of `harness repro sweep`")
    if data.get("format") not in SWEEP_FORMATS or not isinstance(data.get("cells"), list):
        raise UsageError(f"{path}: not a sweep.json this harness reads (format "
                         f"{data.get('format')!r}; reads {', '.join(map(str, SWEEP_FORMATS))})")
    cells: list[SweepCell] = []
    for c in data["cells"]:
        runs = tuple(r for r in c.get("runs") or [] if isinstance(r, dict))
        image = next((r.get("image") for r in runs if r.get("image")), None)
        cells.append(SweepCell(int(c.get("index", len(cells))),
                               {str(k): str(v) for k, v in (c.get("settings") or {}).items()},
                               str(c.get("verdict", "?")), str(c.get("label", "")),
                               c.get("seconds_median"), runs,
                               thumbnail_uri(image, 160) if thumbnails else None))
    sheet_path = Path(str(data.get("sheet") or path.with_name("sheet.png")))
    if not sheet_path.is_file():
        sheet_path = path.with_name("sheet.png")  # the folder was moved
    return SweepView(str(data.get("recipe", "?")), str(data.get("serial", "?")),
                     int(data.get("repeat") or 1),
                     tuple((str(a.get("var")), tuple(str(v) for v in a.get("values") or []))
                           for a in data.get("axes") or []),
                     tuple(cells),
                     thumbnail_uri(sheet_path, SHEET_SIDE_PX) if thumbnails else None,
                     str(path))


def _pictures(store: Store | None, run_id: Any) -> tuple[tuple[str, str], ...]:
    if store is None or not isinstance(run_id, str) or not run_id:
        return ()
    try:
        detail = store.get_run(run_id)
    except UsageError:
        return ()  # the original ran on another host: its run is not in this store
    found = []
    for o in detail.outputs:
        uri = thumbnail_uri(o.png_path)
        if uri:
            found.append((f"{o.step}/{o.name}", uri))
    return tuple(found)


def load_replay(path: Path, store: Store | None = None) -> ReplayView:
    """A replay's side-by-side view from the JSON ``harness replay --json`` printed."""
    data = _read_json(path, "JSON of `harness replay --json`")
    sides = [data.get("original"), data.get("replay")]
    if not all(isinstance(s, dict) for s in sides):
        raise UsageError(f"{path}: not the JSON of `harness replay --json` (no original and "
                         "replay sides)")
    original, replay = (ReplaySide(str(s.get("label") or name), s,
                                   _pictures(store, s.get("run_id")))
                        for s, name in zip(sides, ("original", "replay"), strict=True)
                        if isinstance(s, dict))
    names = sorted(set(original.data.get("metrics") or {}) | set(replay.data.get("metrics")
                                                                  or {}))
    metrics = tuple((n, (original.data.get("metrics") or {}).get(n),
                     (replay.data.get("metrics") or {}).get(n)) for n in names)
    return ReplayView(str(data.get("bundle", "")), str(data.get("assets", "")), original,
                      replay, tuple(str(w) for w in data.get("warnings") or []), metrics,
                      str(path))
