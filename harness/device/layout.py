"""Where harness keeps its own files on a phone: one definition for every layer that looks.

Sync writes its temporaries and finishing scripts here; ``doctor`` counts what dead pushes
left behind. Both read these names, so they cannot drift apart.
"""

from __future__ import annotations

DEVICE_TMP = "/data/local/tmp"  # the shell user's writable folder on every phone
HARNESS_DIR = f"{DEVICE_TMP}/.harness"
MANIFEST_DIR = f"{HARNESS_DIR}/manifests"  # one JSON manifest per synced asset set
SYNC_SCRIPT_DIR = f"{HARNESS_DIR}/tmp"  # a push's finishing script and file lists
SYNC_TMP_MARK = ".harness-tmp-"  # in a pushed file's name until the finishing script renames it

__all__ = ["DEVICE_TMP", "HARNESS_DIR", "MANIFEST_DIR", "SYNC_SCRIPT_DIR", "SYNC_TMP_MARK"]
