"""The sha256 cache: hits while the git-index-like stat key holds, a re-hash otherwise."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

import pytest

from harness.assets import hashcache
from harness.assets.hashcache import HashCache, sha256_file


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the cache really hashed (a miss each), in order."""
    calls: list[str] = []

    def counting(path: Path) -> str:
        calls.append(str(path))
        return sha256_file(path)

    monkeypatch.setattr(hashcache, "sha256_file", counting)
    return calls


def backdate(path: Path, seconds: int = 100) -> None:
    """An mtime well before now, so the entry is not racily clean."""
    then = time.time_ns() - seconds * 1_000_000_000
    os.utime(path, ns=(then, then))


def test_sha256_file_over_several_blocks(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_hits_misses_and_invalidation(tmp_path: Path, hashed: list[str]) -> None:
    files = [tmp_path / f"f{i}" for i in range(3)]
    for i, f in enumerate(files):
        f.write_bytes(b"x" * i)
        backdate(f)
    paths = [str(f) for f in files]
    cache = HashCache(tmp_path / "cache" / "hashes.sqlite")  # its folder is created
    want = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}
    assert cache.hash_many(paths) == want
    assert len(hashed) == 3
    assert cache.hash_many(paths, stats=[os.stat(p) for p in paths]) == want
    assert len(hashed) == 3  # all three from the cache
    # same size, new mtime: re-hashed
    st = files[2].stat()
    files[1].write_bytes(b"y")
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    got = cache.hash_many(paths)
    assert got[paths[1]] == hashlib.sha256(b"y").hexdigest()
    assert got[paths[2]] == want[paths[2]]
    assert hashed[3:] == [paths[1]]  # only the file with a new mtime


def wait_for_ctime_tick(path: Path) -> None:
    """Sleep until a file's ctime would move (coarse kernel clocks tick every few ms)."""
    before = path.stat().st_ctime_ns
    while time.time_ns() <= before + 20_000_000:
        time.sleep(0.005)


def test_new_content_given_its_old_mtime_back_is_rehashed(tmp_path: Path,
                                                          hashed: list[str]) -> None:
    """`touch -r`: same size, same mtime, different bytes -- the ctime tells (as git's)."""
    f = tmp_path / "f"
    f.write_bytes(b"old!")
    backdate(f)  # not racy: the first entry is trusted
    cache = HashCache(tmp_path / "h.sqlite")
    assert cache.hash_many([str(f)]) == {str(f): hashlib.sha256(b"old!").hexdigest()}
    assert cache.hash_many([str(f)])[str(f)] == hashlib.sha256(b"old!").hexdigest()
    assert len(hashed) == 1  # a hit
    st = f.stat()
    wait_for_ctime_tick(f)
    f.write_bytes(b"new!")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert cache.hash_many([str(f)]) == {str(f): hashlib.sha256(b"new!").hexdigest()}
    assert len(hashed) == 2


def test_a_racily_clean_entry_is_not_trusted(tmp_path: Path, hashed: list[str]) -> None:
    """Written, hashed, rewritten with the same size and mtime in one clock tick: re-hashed."""
    f = tmp_path / "f"
    f.write_bytes(b"one")
    cache = HashCache(tmp_path / "h.sqlite")
    assert cache.hash_many([str(f)]) == {str(f): hashlib.sha256(b"one").hexdigest()}
    st = f.stat()
    f.write_bytes(b"two")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.hash_many([str(f)]) == {str(f): hashlib.sha256(b"two").hexdigest()}
    assert len(hashed) == 2
    # the entry the second pass wrote is still racy (mtime within a second of it): re-hashed
    cache.hash_many([str(f)])
    assert len(hashed) == 3
    backdate(f)  # once the mtime is old the next entry is trusted
    cache.hash_many([str(f)])
    cache.hash_many([str(f)])
    assert len(hashed) == 4


def test_moved_inode_is_rehashed(tmp_path: Path, hashed: list[str]) -> None:
    f, g = tmp_path / "f", tmp_path / "g"
    f.write_bytes(b"aaa")
    g.write_bytes(b"bbb")
    for p in (f, g):
        backdate(p)
    st = f.stat()
    cache = HashCache(tmp_path / "h.sqlite")
    cache.hash_many([str(f)])
    g.replace(f)  # another inode at the same path
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.hash_many([str(f)]) == {str(f): hashlib.sha256(b"bbb").hexdigest()}
    assert len(hashed) == 2


def test_an_old_schema_is_dropped_and_recreated(tmp_path: Path, hashed: list[str]) -> None:
    db = tmp_path / "h.sqlite"
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    backdate(f)
    st = f.stat()
    with sqlite3.connect(db) as old:  # the (path, size, mtime) table of earlier harnesses
        old.execute("CREATE TABLE hashes (path TEXT PRIMARY KEY, size INTEGER, "
                    "mtime_ns INTEGER, sha256 TEXT)")
        old.execute("INSERT INTO hashes VALUES (?, ?, ?, ?)",
                    (str(f), st.st_size, st.st_mtime_ns, "0" * 64))
    old.close()
    cache = HashCache(db)
    assert cache.hash_many([str(f)]) == {str(f): hashlib.sha256(b"abc").hexdigest()}
    assert len(hashed) == 1  # the stale row went with the old table
    with sqlite3.connect(db) as check:
        cols = tuple(r[1] for r in check.execute("PRAGMA table_info(hashes)"))
    check.close()
    assert cols == hashcache.COLUMNS
    HashCache(db).hash_many([str(f)])
    assert len(hashed) == 1  # the current schema is kept, with its rows


def test_the_cache_persists_and_keys_by_absolute_path(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      hashed: list[str]) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    backdate(tmp_path / "f")
    db = tmp_path / "h.sqlite"
    HashCache(db).hash_many([str(tmp_path / "f")])
    monkeypatch.chdir(tmp_path)
    again = HashCache(db)
    assert again.hash_many(["f"]) == {"f": hashlib.sha256(b"abc").hexdigest()}
    assert len(hashed) == 1  # the first instance's hash, none by the second


def test_many_paths_are_looked_up_in_chunks(tmp_path: Path, hashed: list[str]) -> None:
    paths = []
    for i in range(1001):  # more than two 500-path chunks of "?" placeholders
        (tmp_path / f"{i}").write_bytes(str(i).encode())
        backdate(tmp_path / f"{i}")
        paths.append(str(tmp_path / f"{i}"))
    cache = HashCache(tmp_path / "h.sqlite")
    cache.hash_many(paths)
    assert cache.hash_many(paths)[paths[1000]] == hashlib.sha256(b"1000").hexdigest()
    assert len(hashed) == 1001  # the second pass hashed nothing


def test_open_default_lives_in_harness_home(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    HashCache.open_default()
    assert (tmp_path / "cache" / "hashes.sqlite").exists()



def test_a_cache_opened_while_another_connection_writes_waits_instead_of_failing(
        tmp_path: Path) -> None:
    # Seen in CI: bench workers opening a fresh cache together; one died with "database is
    # locked" at once. SQLite's busy handler does not cover the switch to WAL: while another
    # connection holds a write transaction on a rollback-journal database, `PRAGMA
    # journal_mode=WAL` fails immediately, whatever the connection's timeout.
    import threading

    db = tmp_path / "hashes.sqlite"
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE unrelated (a)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO unrelated VALUES (1)")
    timer = threading.Timer(0.5, other.execute, ("COMMIT",))
    timer.start()
    try:
        cache = HashCache(db)
    finally:
        timer.join()
        other.close()
    assert cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
