"""Digests of asset sets (``{set: {device path: sha256}}``): local, on a phone, compared.

Local digests come from the sync layer's scan (:func:`harness.assets.sync.scan_set`, through
the hash cache); a phone's from the manifests harness's sync leaves there
(``/data/local/tmp/.harness/manifests/<set>.json``: size, mtime, mode and sha256 per file).
Weights are never read into a bundle: only these digests travel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from harness.assets.hashcache import HashCache
from harness.assets.sets import load_asset_sets, require_sets
from harness.assets.sync import MANIFEST_DIR, MANIFEST_VERSION, scan_set
from harness.device.device import Device
from harness.device.devshell import quote
from harness.errors import HarnessError

Digests = dict[str, dict[str, str]]


def local_digests(names: Sequence[str], recipes_dirs: Sequence[Path] = ()) -> Digests:
    """The digests of asset sets ``names`` as this host has them now."""
    from harness.farm.inventory import ensure_demo_assets

    sets = load_asset_sets(recipes_dirs)
    chosen = require_sets(list(names), sets, [f"the plan's asset set {n}" for n in names])
    ensure_demo_assets(e.src for s in chosen for e in s.entries)
    cache = HashCache.open_default()
    return {s.name: {f.remote: f.sha256 for f in scan_set(s, cache)} for s in chosen}


def phone_digests(device: Device, names: Sequence[str]) -> Digests:
    """The digests the phone's sync manifests record (an empty set when it has none)."""
    found: Digests = {}
    for name in names:
        result = device.run(f"cat {quote(f'{MANIFEST_DIR}/{name}.json')} 2>/dev/null",
                            timeout=60)
        entries: dict[str, str] = {}
        try:
            data = json.loads(result.out) if result.ok and result.out.strip() else {}
        except ValueError:
            data = {}
        if isinstance(data, dict) and data.get("version") == MANIFEST_VERSION:
            for root, files in (data.get("entries") or {}).items():
                for rel, record in (files or {}).items():
                    entries[f"{root}/{rel}" if rel else root] = str(record[3])
        found[name] = entries
    return found


def differing(want: Digests, have: Digests) -> dict[str, list[str]]:
    """Per set, the device paths whose digest differs or is missing (either way)."""
    out: dict[str, list[str]] = {}
    for name, files in want.items():
        other = have.get(name, {})
        bad = sorted(p for p in set(files) | set(other) if files.get(p) != other.get(p))
        if bad:
            out[name] = bad
    return out


class AssetMismatch(HarnessError):
    """The assets this host would push are not those the bundle's run used."""


__all__ = ["AssetMismatch", "Digests", "differing", "local_digests", "phone_digests"]
