"""Whether the virtual farm's demo tree is as :mod:`harness.sim.assets` last wrote it, without
building it again (that needs numpy and hashes ~1 MB: ~60 ms of every ``harness run`` and
``harness push`` on a virtual phone, issue 12).

The stamp records what wrote the tree (a digest of the generating modules' sources, the
interpreter and the checkout the wrapper scripts point to) and each file's mode and
:func:`harness.statkey.stat_key`. A stamp that :func:`harness.statkey.vouches` does not accept
for some file (written too soon after it changed) leaves the tree to be checked by content
once more, and the stamp is written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from harness.statkey import stat_key, vouches

STAMP_SUFFIX = ".stamp.json"  # beside the tree, never in it (a set may sync the whole tree)
_SOURCES = ("assets.py", "devtools.py", "../clip.py")  # what demo_files() depends on


def generator_key() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(f"{sys.executable}\0{here.parents[1]}\0".encode())
    for rel in _SOURCES:
        digest.update((here / rel).read_bytes())
    return digest.hexdigest()


def stamp_path(dest: Path) -> Path:
    return dest.with_name(dest.name + STAMP_SUFFIX)


def _recorded(st: os.stat_result) -> list[int]:
    return [*stat_key(st), st.st_mode]


def is_current(dest: Path) -> bool:
    """The tree under ``dest`` holds exactly what its stamp says was written."""
    try:
        stamp = json.loads(stamp_path(dest).read_text())
        written_ns = int(stamp["written_ns"])
        if stamp["key"] != generator_key():
            return False
        files: dict[str, list[int]] = stamp["files"]
        for rel, recorded in files.items():
            st = (dest / rel).lstat()
            if _recorded(st) != recorded or not vouches(st, written_ns):
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def write_stamp(dest: Path, rels: Iterable[str]) -> None:
    """Record the files ``rels`` of ``dest`` as just written (or checked) by content."""
    files = {rel: _recorded((dest / rel).lstat()) for rel in rels}
    path = stamp_path(dest)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        written_ns = os.fstat(fh.fileno()).st_mtime_ns  # the file system's own clock
        fh.write(json.dumps({"key": generator_key(), "written_ns": written_ns,
                             "files": files}))
    tmp.replace(path)
