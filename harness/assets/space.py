"""Room on the phone for a push: free bytes, block size and free inodes of its /data, and
what a plan occupies there (each file rounded up to whole blocks, plus inode and entry)."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from harness.assets.state import SetPlan, manifest_json
from harness.device.layout import DEVICE_TMP

SECTION = "@@harness-sync:"
DEFAULT_BLOCK_BYTES = 4096  # ext4 and f2fs on phones; used when `stat -f` says nothing
MAX_BLOCK_BYTES = 1024 * 1024  # a block size above this is a misread, not a filesystem
# An inode (256 bytes on ext4, f2fs keeps one 4 KiB node block per inode but packs small
# files inline) plus a directory entry: what a file costs beyond its data blocks.
INODE_OVERHEAD_BYTES = 512


@dataclass(frozen=True)
class DiskSpace:
    """What the phone's /data has room for (None: the phone did not say)."""

    free_bytes: int | None
    block_bytes: int
    free_inodes: int | None


def parse_space(out: str) -> DiskSpace:
    """Parse ``df -k`` (last line), the section mark, then ``stat -f -c '%S %d'``.

    toybox and GNU agree: ``df -k`` columns are filesystem, 1K-blocks, used, available;
    ``stat -f`` ``%S`` is the fundamental block size, ``%d`` the free inodes.
    """
    df_text, _, stat_text = out.partition(SECTION)
    cols = df_text.split()
    free = int(cols[3]) * 1024 if len(cols) >= 4 and cols[3].isdigit() else None
    fields = stat_text.split()
    block = int(fields[0]) if fields and fields[0].isdigit() and int(fields[0]) > 0 \
        else DEFAULT_BLOCK_BYTES
    inodes = int(fields[1]) if len(fields) >= 2 and fields[1].isdigit() else None
    # Some filesystems (e.g. FAT, some FUSE) report 0 inodes: they have no inode limit.
    return DiskSpace(free, min(block, MAX_BLOCK_BYTES), inodes or None)


def space_needed(plans: Sequence[SetPlan], block_bytes: int) -> int:
    """Bytes a push occupies: each file rounded up to whole blocks plus its inode and
    directory entry, each new directory one block, and the manifests."""
    def blocks(size: int) -> int:
        return -(-size // block_bytes) * block_bytes

    total = 0
    folders: set[str] = set()
    for plan in plans:
        for f in plan.push:
            total += blocks(f.size) + INODE_OVERHEAD_BYTES
            if f.rel:
                folders.add(posixpath.dirname(f"{f.dest_root}/{f.rel}"))
        total += blocks(len(manifest_json(plan))) + INODE_OVERHEAD_BYTES
    return total + len(folders) * (block_bytes + INODE_OVERHEAD_BYTES)


def tmp_roots(plans: Sequence[SetPlan]) -> list[str]:
    """The folders that can hold temporaries of these sets (nested ones dropped)."""
    roots = {DEVICE_TMP} | {posixpath.dirname(f.dest_root) or "/" for p in plans
                            for f in p.local}
    kept: list[str] = []
    for root in sorted(roots):
        if not any(root == k or root.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(root)
    return kept
