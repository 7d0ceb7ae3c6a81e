"""sha256 of local files, cached by their stat so 10 GB are not re-hashed each run.

The cache is a small SQLite file under ``$HARNESS_HOME/cache/``. An entry is keyed the way
git's index keys a file (git ``read-cache.c`` ``match_stat_data`` / ``is_racy_timestamp``):
size, mtime, ctime (nanoseconds), inode and device must all still match, so a file rewritten
and given its old mtime back (``touch -r``, an unpacked archive) is re-hashed: its ctime moved,
and ctime cannot be set from user space. A file whose mtime is within
:data:`harness.statkey.RACY_NS` of the time its entry was written is "racily clean" -- it may
have changed again within the filesystem's timestamp granularity without its stat showing
it -- so such an entry is never trusted: the file is hashed again next time (and the new
entry, written later, is then trusted). The key and the rule are :mod:`harness.statkey`'s,
shared with the other stat-keyed caches.

It is a cache: when the table's columns differ from this module's (an older harness), the
table is dropped and recreated. Hashing runs in threads: hashlib releases the GIL.
"""

from __future__ import annotations

import concurrent.futures
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from harness.home import harness_home
from harness.logs import get_logger
from harness.statkey import Key, stat_key, vouches

log = get_logger(__name__)

HASH_BLOCK_BYTES = 1024 * 1024
COLUMNS = ("path", "size", "mtime_ns", "ctime_ns", "ino", "dev", "written_ns", "sha256")
_SCHEMA = ("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, "
           "mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER, dev INTEGER, "
           "written_ns INTEGER, sha256 TEXT)")
def sha256_file(path: Path) -> str:
    import hashlib  # here: a sync whose cache knows every file hashes nothing (~3 ms)

    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as fh:
        buf = bytearray(HASH_BLOCK_BYTES)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


OPEN_TIMEOUT_S = 30.0


def _wal(db: sqlite3.Connection) -> None:
    """Switch ``db`` to WAL, waiting for other writers as its busy timeout would.

    SQLite's busy handler does not cover the journal-mode change: while another connection
    holds a write transaction on a rollback-journal database (a fresh cache that another
    process is creating), ``PRAGMA journal_mode=WAL`` fails at once with "database is
    locked" (sqlite.org, "pragma journal_mode": the change needs an exclusive lock and is
    not retried). So it is retried here, within the same bound.
    """
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class HashCache:
    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, check_same_thread=False, timeout=OPEN_TIMEOUT_S)
        _wal(self._db)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")  # one process migrates at a time
            have = tuple(row[1] for row in self._db.execute("PRAGMA table_info(hashes)"))
            if have and have != COLUMNS:
                log.debug("hash cache: columns %s differ, table recreated", have)
                self._db.execute("DROP TABLE hashes")
            self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    @classmethod
    def open_default(cls) -> HashCache:
        return cls(harness_home() / "cache" / "hashes.sqlite")

    def hash_many(self, paths: Sequence[str], workers: int = 4,
                  stats: Sequence[os.stat_result] | None = None) -> dict[str, str]:
        """sha256 of every path, from the cache where its stat key still matches.

        ``stats`` (one per path) saves a stat call per file when the caller has them.
        """
        result: dict[str, str] = {}
        todo: list[tuple[str, str, Key]] = []
        keys = [os.path.abspath(p) for p in paths]  # noqa: PTH100 - strings on purpose
        rows = self._lookup(keys)
        for i, (path, key) in enumerate(zip(paths, keys, strict=True)):
            st = stats[i] if stats is not None else os.stat(path)  # noqa: PTH116
            want = stat_key(st)
            cached = rows.get(key)
            if cached is not None and cached[0] == want and vouches(st, cached[1]):
                result[path] = cached[2]
            else:
                todo.append((path, key, want))
        log.debug("hash cache: %d of %d file(s) to hash", len(todo), len(paths))
        if todo:
            written = time.time_ns()  # before any byte is read: the racy test's reference
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                digests = list(pool.map(lambda item: sha256_file(Path(item[0])), todo))
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(key, *stat_key, written, d) for (_, key, stat_key), d
                     in zip(todo, digests, strict=True)])
            for (path, _, _), digest in zip(todo, digests, strict=True):
                result[path] = digest
        return result

    def _lookup(self, keys: Sequence[str]) -> dict[str, tuple[Key, int, str]]:
        """The cached (stat key, written_ns, sha256) of each absolute path that has one."""
        rows: dict[str, tuple[Key, int, str]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                        f"SELECT {', '.join(COLUMNS)} FROM hashes "  # noqa: S608 - only column names and "?" placeholders are formatted in
                        f"WHERE path IN ({marks})", chunk):
                    rows[row[0]] = ((row[1], row[2], row[3], row[4], row[5]), row[6], row[7])
        return rows
