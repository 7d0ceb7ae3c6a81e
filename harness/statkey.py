"""A file's identity as git's index records it, and git's "racy clean" rule
(``Documentation/technical/racy-git.txt``): what the hash cache, the parsed-YAML cache and the
demo tree's stamp trust a file by, so that all three trust it alike.

The key is size, mtime, ctime, inode and device: an edit changes ctime even when ``touch -r``
gives the old mtime back, and a file replaced by another has another inode. An entry written
less than :data:`RACY_NS` after the file last changed cannot vouch for it: timestamps are
coarse (an edit within the same tick keeps every field), so such a file is checked again.
As in git (``read-cache.c`` ``is_racy_stat``) the test is on mtime: a later edit of any kind
moves ctime, which the key compares.
"""

from __future__ import annotations

import os

Key = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, ino, dev
RACY_NS = 2_000_000_000  # FAT and some network file systems keep mtimes to 2 s


def stat_key(st: os.stat_result) -> Key:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def vouches(st: os.stat_result, written_ns: int) -> bool:
    """An entry written at ``written_ns`` (the file system's or the wall clock) came late
    enough after the file's last modification (``st``) to stand for it."""
    return written_ns - st.st_mtime_ns >= RACY_NS
