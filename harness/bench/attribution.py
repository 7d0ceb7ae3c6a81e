"""Attribution: what changed between the last good run and the first bad one.

Every run records its :class:`Provenance`: the digests of the asset sets it used (set name ->
{file -> sha256}, as the sync manifests hold them), the harness version and the phone's
build fingerprint (``ro.build.fingerprint``). :func:`diff` compares two provenances and
returns one :class:`Change` per thing that differs; :meth:`Change.describe` words it:

    sdxl-binaries changed: sdxl_pipeline_run a1b2c3d4 -> c3d4e5f6
    sd15-weights changed: unet.bin a1b2c3d4 -> (removed), unet_v2.bin (new) -> 9f8e7d6c
    asset set qnn-libs added
    phone OS update: google/oriole/...:13/... -> google/oriole/...:14/...
    harness 0.1.0 -> 0.2.0

Digests are shortened to ``DIGEST_CHARS`` hex characters; at most ``MAX_FILES_NAMED`` files
are named per set ("... and N more files"). Pure functions; the caller picks the runs (for a
change point at night ``index``: the last valid run before it and the first at or after it,
see :func:`attribute`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

DIGEST_CHARS = 8  # enough to tell builds apart in a message; full digests stay in the data
MAX_FILES_NAMED = 3  # a message names this many changed files per set, then counts the rest

ChangeKind = Literal["asset-set", "asset-set-added", "asset-set-removed", "phone-os",
                     "harness"]


@dataclass(frozen=True)
class Provenance:
    """What one run was made of."""

    assets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    harness_version: str = ""
    build_fingerprint: str = ""


@dataclass(frozen=True)
class FileChange:
    """One file of an asset set whose digest differs (None: absent on that side)."""

    path: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Change:
    """One difference between the last good and the first bad run."""

    kind: ChangeKind
    subject: str  # the asset set's name, "phone" or "harness"
    before: str | None = None
    after: str | None = None
    files: tuple[FileChange, ...] = ()

    def describe(self) -> str:
        """The change in one line of words (see the module docstring)."""
        if self.kind == "phone-os":
            return f"phone OS update: {self.before} -> {self.after}"
        if self.kind == "harness":
            return f"harness {self.before} -> {self.after}"
        if self.kind == "asset-set-added":
            return f"asset set {self.subject} added"
        if self.kind == "asset-set-removed":
            return f"asset set {self.subject} removed"
        named = [f"{f.path} {_short(f.before, '(new)')} -> {_short(f.after, '(removed)')}"
                 for f in self.files[:MAX_FILES_NAMED]]
        rest = len(self.files) - MAX_FILES_NAMED
        more = f" and {rest} more file{'s' if rest > 1 else ''}" if rest > 0 else ""
        return f"{self.subject} changed: {', '.join(named)}{more}"


def _short(digest: str | None, absent: str) -> str:
    return absent if digest is None else digest[:DIGEST_CHARS]


def _diff_set(name: str, good: Mapping[str, str], bad: Mapping[str, str]) -> Change | None:
    files = tuple(FileChange(path, good.get(path), bad.get(path))
                  for path in sorted(set(good) | set(bad)) if good.get(path) != bad.get(path))
    return Change("asset-set", name, files=files) if files else None


def diff(good: Provenance, bad: Provenance) -> list[Change]:
    """Everything that differs from ``good`` to ``bad``: asset sets (by name), then the
    phone's build, then harness."""
    changes: list[Change] = []
    for name in sorted(set(good.assets) | set(bad.assets)):
        if name not in bad.assets:
            changes.append(Change("asset-set-removed", name))
        elif name not in good.assets:
            changes.append(Change("asset-set-added", name))
        else:
            changed = _diff_set(name, good.assets[name], bad.assets[name])
            if changed:
                changes.append(changed)
    if good.build_fingerprint != bad.build_fingerprint:
        changes.append(Change("phone-os", "phone", good.build_fingerprint,
                              bad.build_fingerprint))
    if good.harness_version != bad.harness_version:
        changes.append(Change("harness", "harness", good.harness_version, bad.harness_version))
    return changes


def describe(changes: Sequence[Change]) -> list[str]:
    """One line per change; a single line saying so when nothing recorded changed."""
    if not changes:
        return ["nothing recorded changed (asset sets, phone build and harness are the same):"
                " look at the phone's state or the environment"]
    return [c.describe() for c in changes]


def attribute(history: Sequence[Provenance | None], index: int) -> list[Change]:
    """Changes for a change point at ``index`` in a per-night ``history`` (None: no valid
    run that night): the last recorded night before ``index`` against the first recorded
    night at or after it. Raises ValueError when either side has no record."""
    good = next((p for p in reversed(history[:index]) if p is not None), None)
    bad = next((p for p in history[index:] if p is not None), None)
    if good is None or bad is None:
        raise ValueError(f"no recorded run on {'before' if good is None else 'after'} "
                         f"side of night {index}")
    return diff(good, bad)
