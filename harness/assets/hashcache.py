"""sha256 of local files, cached by (path, size, mtime) so 10 GB are not re-hashed each run.

The cache is a small SQLite file under ``$HARNESS_HOME/cache/``; a changed size or mtime
(nanoseconds) invalidates an entry. Hashing runs in threads: hashlib releases the GIL.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from harness.home import harness_home

log = logging.getLogger(__name__)

HASH_BLOCK_BYTES = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as fh:
        buf = bytearray(HASH_BLOCK_BYTES)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


class HashCache:
    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, "
            "mtime_ns INTEGER, sha256 TEXT)")
        self._lock = threading.Lock()

    @classmethod
    def open_default(cls) -> HashCache:
        return cls(harness_home() / "cache" / "hashes.sqlite")

    def hash_many(self, paths: Sequence[str], workers: int = 4,
                  stats: Sequence[os.stat_result] | None = None) -> dict[str, str]:
        """sha256 of every path, from the cache where (size, mtime) still match.

        ``stats`` (one per path) saves a stat call per file when the caller has them.
        """
        result: dict[str, str] = {}
        todo: list[tuple[str, str, int, int]] = []
        keys = [os.path.abspath(p) for p in paths]  # noqa: PTH100 - strings on purpose
        rows: dict[str, tuple[int, int, str]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                        f"SELECT path, size, mtime_ns, sha256 FROM hashes "  # noqa: S608 - only "?" placeholders are formatted in
                        f"WHERE path IN ({marks})", chunk):
                    rows[row[0]] = (row[1], row[2], row[3])
        for i, (path, key) in enumerate(zip(paths, keys, strict=True)):
            st = stats[i] if stats is not None else os.stat(path)  # noqa: PTH116
            cached = rows.get(key)
            if cached is not None and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
                result[path] = cached[2]
            else:
                todo.append((path, key, st.st_size, st.st_mtime_ns))
        log.debug("hash cache: %d of %d file(s) to hash", len(todo), len(paths))
        if todo:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                digests = list(pool.map(lambda item: sha256_file(Path(item[0])), todo))
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)",
                    [(key, size, mtime, d) for (_, key, size, mtime), d
                     in zip(todo, digests, strict=True)])
            for (path, _, _, _), digest in zip(todo, digests, strict=True):
                result[path] = digest
        return result
