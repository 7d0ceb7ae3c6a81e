"""Whether the virtual farm's demo tree is as :mod:`harness.sim.assets` last wrote it, without
building it again (that needs numpy and hashes ~1 MB: ~60 ms of every ``harness run`` and
``harness push`` on a virtual phone, issue 12).

The stamp records what wrote the tree (a digest of the generating modules' sources, the
interpreter and the checkout the wrapper scripts point to) and each file's stat as git's
index does (size, mtime, ctime, inode, mode): an edit, even one that restores the old mtime
with ``touch -r``, changes ctime. A stamp written less than :data:`RACY_S` after a file last
changed cannot vouch for it (timestamps are coarse: an edit in the same tick keeps them), so
then the tree is checked by content once more and the stamp written again (git's "racy
clean" rule, ``Documentation/technical/racy-git.txt``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

STAMP_SUFFIX = ".stamp.json"  # beside the tree, never in it (a set may sync the whole tree)
RACY_S = 2.0  # FAT and some network file systems keep mtimes to 2 s
_SOURCES = ("assets.py", "devtools.py", "../clip.py")  # what demo_files() depends on


def generator_key() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(f"{sys.executable}\0{here.parents[1]}\0".encode())
    for rel in _SOURCES:
        digest.update((here / rel).read_bytes())
    return digest.hexdigest()


def stamp_path(dest: Path) -> Path:
    return dest.with_name(dest.name + STAMP_SUFFIX)


def _stat_of(path: Path) -> list[int]:
    st = path.lstat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode]


def is_current(dest: Path) -> bool:
    """The tree under ``dest`` holds exactly what its stamp says was written."""
    try:
        stamp = json.loads(stamp_path(dest).read_text())
        written_ns = int(stamp["written_ns"])
        if stamp["key"] != generator_key():
            return False
        files: dict[str, list[int]] = stamp["files"]
        newest = 0
        for rel, recorded in files.items():
            now = _stat_of(dest / rel)
            if now != recorded:
                return False
            newest = max(newest, now[1], now[2])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return written_ns - newest >= RACY_S * 1e9


def write_stamp(dest: Path, rels: Iterable[str]) -> None:
    """Record the files ``rels`` of ``dest`` as just written (or checked) by content."""
    files = {rel: _stat_of(dest / rel) for rel in rels}
    text = json.dumps({"key": generator_key(), "written_ns": _now_ns(dest),
                       "files": files})
    path = stamp_path(dest)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _now_ns(dest: Path) -> int:
    """The file system's own clock (a fresh file's mtime), which stamps the files too."""
    probe = dest / f".{dest.name}{STAMP_SUFFIX}.{os.getpid()}.clock"
    probe.write_bytes(b"")
    try:
        return probe.stat().st_mtime_ns
    finally:
        probe.unlink()
