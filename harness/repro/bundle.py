"""``harness bundle``: one archive that says everything about a run, and reading it back.

Format: a gzip-compressed tar (``.tar.gz``). Tar rather than zip because it is written and
read as one stream (no seeking: it can go through a pipe or ``ssh``), keeps POSIX names, and
every host that drives phones (and toybox on the phone) unpacks it; the PNGs inside are
already compressed, so zip's per-member compression would buy nothing.

Members (all regular files; :data:`BUNDLE_FORMAT` in ``manifest.json``)::

    manifest.json          format, kind, the run's id/recipe/phone, sha256 + size per member,
                           where the asset digests come from
    README.md              what this is and how to replay it
    plan.json  run.sh      the rendered plan and its copy-pasteable script
    device.json            the phone's facts at the start of the run
    verdicts.json          status, diagnosis, verdict lines, the detectors' verdict, steps,
                           metrics, outputs (NaN/Inf counts)
    assets.json            {set: {device path: sha256}} of every asset set used (no weights)
    telemetry/samples.csv  the run's samples table rows (when it has any)
    run/...                the run folder: logs, [Perf] JSON, PNGs, telemetry CSVs
                           (qfp32 files only with ``qfp32=True``)

Reading checks every member before anything is used: regular files only, relative names
without ``..``, no duplicates, the manifest's format, every digest; a bundle that fails any
check is refused whole (one-line :class:`BundleError`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import posixpath
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import UsageError
from harness.recipes.plan import Plan
from harness.recipes.script import render_shell
from harness.repro.digests import local_digests
from harness.repro.verdict import classify, summary_of
from harness.results.runextras import get_provenance, samples
from harness.results.store import RunDetail, Store

BUNDLE_FORMAT = 1
BUNDLE_KIND = "harness-bundle"
MAX_MEMBER_BYTES = 1 << 31  # 2 GiB: no honest member is bigger (a 1024 px qfp32 is 12 MiB)
MAX_MEMBERS = 10_000
README = """# harness bundle: run {run_id}

Recipe `{recipe}` on phone `{serial}` ({model}, {ram}), {status}, harness {version}.

- `plan.json`, `run.sh`: exactly what ran (replay it: `harness replay THIS_FILE --device SEL`;
  or by hand: `sh run.sh` with the assets in place)
- `verdicts.json`: status, diagnosis and verdicts; `device.json`: the phone's facts
- `assets.json`: sha256 of every file of the asset sets used ({digest_source}); the weights
  themselves are not in the bundle: `harness replay` checks the other phone has the same
- `run/`: the run folder (logs, `[Perf]` figures, PNGs{qfp32}); `telemetry/`: samples
- `manifest.json`: format {format}, sha256 of every member
"""


class BundleError(UsageError):
    """Not a harness bundle, a damaged one, or one with unsafe member names."""


@dataclass(frozen=True)
class Bundle:
    """A bundle read back (its files checked against the manifest)."""

    path: Path
    manifest: dict[str, Any]
    plan: Plan
    verdicts: dict[str, Any]
    assets: dict[str, dict[str, str]]
    device: dict[str, Any]
    samples_csv: str | None


def _dump(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def _verdicts(detail: RunDetail) -> dict[str, Any]:
    run = detail.run
    metrics: dict[str, dict[str, float]] = {}
    for m in detail.metrics:
        metrics.setdefault(m.step, {})[m.name] = m.value
    return {
        "status": run.status, "diagnosis": run.diagnosis,
        "verdicts": (run.verdict or "").splitlines(),
        "detected": classify(summary_of(detail)).to_dict(),
        "seconds": run.seconds, "serial": run.serial, "started_at": run.started_at,
        "steps": [{"index": s.index, "name": s.name, "exit_code": s.exit_code,
                   "signal": s.signal, "seconds": s.seconds, "diagnosis": s.diagnosis}
                  for s in detail.steps],
        "metrics": metrics,
        "outputs": [{"step": o.step, "name": o.name, "kind": o.kind, "shape": list(o.shape),
                     "nan_count": o.nan_count, "inf_count": o.inf_count,
                     "png": Path(o.png_path).name if o.png_path else None}
                    for o in detail.outputs],
    }


def _samples_csv(store: Store, run_id: str) -> bytes | None:
    rows = samples(store, run_id)
    if not rows:
        return None
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["step", "t", "name", "value"])
    writer.writerows([r.step, f"{r.t:.3f}", r.name, repr(r.value)] for r in rows)
    return text.getvalue().encode()


def _folder_files(run_dir: Path | None, qfp32: bool) -> dict[str, Path]:
    if run_dir is None or not run_dir.is_dir():
        return {}
    found = {}
    for path in sorted(run_dir.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if path.suffix == ".qfp32" and not qfp32:
            continue
        found["run/" + path.relative_to(run_dir).as_posix()] = path
    return found


def _members(detail: RunDetail, store: Store, qfp32: bool,
             recipes_dirs: tuple[Path, ...]) -> tuple[dict[str, bytes | Path], str]:
    run = detail.run
    plan = Plan.from_dict(detail.plan)
    run_dir = Path(run.run_dir) if run.run_dir else None
    provenance = get_provenance(store, run.id) or {}
    assets = provenance.get("asset_sets")
    source = "recorded with the run"
    if not isinstance(assets, dict):
        assets = local_digests(plan.asset_sets, recipes_dirs)
        source = "the local asset sets when the bundle was made (the run recorded none)"
    members: dict[str, bytes | Path] = {
        "plan.json": _dump(plan.to_dict()),
        "run.sh": render_shell(plan).encode(),
        "device.json": _dump(run.device or {}),
        "verdicts.json": _dump(_verdicts(detail)),
        "assets.json": _dump(assets),
    }
    telemetry = _samples_csv(store, run.id)
    if telemetry is not None:
        members["telemetry/samples.csv"] = telemetry
    members.update(_folder_files(run_dir, qfp32))
    return members, source


def _sha256(data: bytes | Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    if isinstance(data, bytes):
        digest.update(data)
        return digest.hexdigest(), len(data)
    size = 0
    with data.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _add(tar: tarfile.TarFile, name: str, data: bytes | Path, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o644, int(mtime)
    if isinstance(data, bytes):
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        info.size = data.stat().st_size
        with data.open("rb") as fh:
            tar.addfile(info, fh)


def default_name(detail: RunDetail) -> str:
    return f"bundle-{detail.run.recipe}-{detail.run.id}.tar.gz"


def write_bundle(run_ref: str, dest: Path | None, *, db_path: Path | None = None,
                 qfp32: bool = False, recipes_dirs: tuple[Path, ...] = ()) -> Path:
    """Write the bundle of run ``run_ref`` to ``dest`` (default: ``./bundle-R-ID.tar.gz``);
    written under a temporary name and renamed, so a failure leaves nothing."""
    with Store.open(db_path) as store:
        detail = store.get_run(run_ref)
        members, source = _members(detail, store, qfp32, recipes_dirs)
    run = detail.run
    device = run.device or {}
    files = {}
    for name, data in members.items():
        sha, size = _sha256(data)
        files[name] = {"sha256": sha, "size": size}
    manifest = {"format": BUNDLE_FORMAT, "kind": BUNDLE_KIND, "created_at": time.time(),
                "harness_version": __version__, "asset_digests": source, "qfp32": qfp32,
                "run": {"id": run.id, "recipe": run.recipe, "serial": run.serial,
                        "status": run.status, "started_at": run.started_at},
                "files": files}
    readme = README.format(
        run_id=run.id, recipe=run.recipe, serial=run.serial, status=run.status,
        model=device.get("model") or "unknown model",
        ram=f"{device.get('marketed_ram_gb')} GB" if device.get("marketed_ram_gb") else "RAM ?",
        version=__version__, digest_source=source, format=BUNDLE_FORMAT,
        qfp32=", qfp32 tensors" if qfp32 else "")
    dest = dest or Path(default_name(detail))
    if dest.is_dir():
        dest = dest / default_name(detail)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            now = time.time()
            _add(tar, "manifest.json", _dump(manifest), now)
            _add(tar, "README.md", readme.encode(), now)
            for name, data in members.items():
                _add(tar, name, data, now)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# ---- reading -----------------------------------------------------------------------------

def _safe_name(name: str) -> bool:
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return False
    norm = posixpath.normpath(name)
    return norm == name and not norm.startswith("..") and ".." not in norm.split("/")


def _read_members(path: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for count, info in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise BundleError(f"{path}: more than {MAX_MEMBERS} members")
                if not _safe_name(info.name):
                    raise BundleError(f"{path}: unsafe member name {info.name!r} (absolute "
                                      "or with ..): refused")
                if not info.isreg():
                    raise BundleError(f"{path}: member {info.name!r} is not a regular file "
                                      "(links and devices are refused)")
                if info.size > MAX_MEMBER_BYTES or info.name in found:
                    raise BundleError(f"{path}: member {info.name!r} is too big or repeated")
                handle = tar.extractfile(info)
                found[info.name] = handle.read() if handle else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise BundleError(f"{path}: no such bundle") from exc
        raise BundleError(f"{path}: not a readable harness bundle ({exc})") from exc
    return found


def _json(members: dict[str, bytes], name: str, path: Path) -> Any:
    try:
        return json.loads(members[name])
    except KeyError:
        raise BundleError(f"{path}: not a harness bundle (no {name})") from None
    except ValueError as exc:
        raise BundleError(f"{path}: {name} is not JSON ({exc})") from exc


def _check_manifest(manifest: Any, members: dict[str, bytes], path: Path) -> None:
    if not isinstance(manifest, dict) or manifest.get("kind") != BUNDLE_KIND:
        raise BundleError(f"{path}: not a harness bundle (manifest kind)")
    version = manifest.get("format")
    if not isinstance(version, int) or version > BUNDLE_FORMAT:
        raise BundleError(f"{path}: bundle format {version!r} is newer than this harness "
                          f"reads ({BUNDLE_FORMAT})", hint="upgrade harness")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{path}: manifest lists no files")
    extra = set(members) - set(files) - {"manifest.json", "README.md"}
    if extra:
        raise BundleError(f"{path}: member {sorted(extra)[0]!r} is not in the manifest")
    for name, meta in files.items():
        data = members.get(name)
        if data is None:
            raise BundleError(f"{path}: {name} is listed in the manifest but missing")
        if not isinstance(meta, dict) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise BundleError(f"{path}: {name} does not match its digest: the bundle is "
                              "damaged")


def read_bundle(path: Path) -> Bundle:
    """Read and check a bundle (BundleError, one line, on anything wrong)."""
    members = _read_members(path)
    manifest = _json(members, "manifest.json", path)
    _check_manifest(manifest, members, path)
    plan = Plan.from_dict(_json(members, "plan.json", path))
    assets = _json(members, "assets.json", path)
    if not isinstance(assets, dict) or not all(isinstance(v, dict) for v in assets.values()):
        raise BundleError(f"{path}: assets.json is not {{set: {{path: sha256}}}}")
    csv_data = members.get("telemetry/samples.csv")
    return Bundle(path, manifest, plan, _json(members, "verdicts.json", path), assets,
                  _json(members, "device.json", path),
                  csv_data.decode("utf-8", "replace") if csv_data is not None else None)


__all__ = ["BUNDLE_FORMAT", "Bundle", "BundleError", "default_name", "read_bundle",
           "write_bundle"]
