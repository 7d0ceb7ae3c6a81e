"""The sha256 cache: hits while (size, mtime) hold, a re-hash when either changes."""

from __future__ import annotations

import hashlib
import os
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
    paths = [str(f) for f in files]
    cache = HashCache(tmp_path / "cache" / "hashes.sqlite")  # its folder is created
    want = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}
    assert cache.hash_many(paths) == want
    assert len(hashed) == 3
    assert cache.hash_many(paths, stats=[os.stat(p) for p in paths]) == want
    assert len(hashed) == 3  # all three from the cache
    # same size, new mtime: re-hashed; new content with the old size and mtime: trusted
    files[1].write_bytes(b"y")
    st = files[2].stat()
    files[2].write_bytes(b"zz")
    os.utime(files[2], ns=(st.st_atime_ns, st.st_mtime_ns))
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    got = cache.hash_many(paths)
    assert got[paths[1]] == hashlib.sha256(b"y").hexdigest()
    assert got[paths[2]] == want[paths[2]]  # the cache's contract: (size, mtime) or nothing
    assert hashed[3:] == [paths[1]]  # only the file with a new mtime


def test_the_cache_persists_and_keys_by_absolute_path(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      hashed: list[str]) -> None:
    (tmp_path / "f").write_bytes(b"abc")
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
