"""Parsed YAML files kept between commands, trusted only while the file is provably the one
parsed: every command reads the farm file, asset sets and recipes, and importing PyYAML
alone is ~15 ms of a ~0.15 s ``harness push`` (issue 12).

An entry is the parse of one file (:class:`harness.yamlpos.PosDict` / ``PosList`` trees with
their line numbers, as builtin values for :mod:`marshal`, which needs no import) with the
file's :func:`harness.statkey.stat_key` (as git's index records it: an edit changes ctime
even when ``touch -r`` restores the mtime). An entry that :func:`harness.statkey.vouches`
does not accept (written too soon after the file's last change) is not used, and the next
parse rewrites it. The parser's identity (PyYAML's
location and stat, this format's version) is part of the entry: another PyYAML parses
again. A file whose values marshal cannot hold (YAML timestamps) is never cached. Any
problem with the cache (unreadable, corrupt, read-only) means parsing as if it were empty.
"""

from __future__ import annotations

import contextlib
import importlib.util
import marshal
import os
import zlib
from pathlib import Path
from typing import Any

from harness.home import harness_home
from harness.statkey import stat_key, vouches

FORMAT = 1
_DIR = ("cache", "yaml")
_parser_key: tuple[Any, ...] | None = None


def parser_key() -> tuple[Any, ...]:
    """What parsed the entries: this format and PyYAML's installed files (not imported)."""
    global _parser_key
    if _parser_key is None:
        spec = importlib.util.find_spec("yaml")
        origin = spec.origin if spec is not None else None
        parts: list[Any] = [FORMAT, origin or ""]
        if origin:
            folder = Path(origin).parent
            for entry in sorted(folder.iterdir()):  # the C extension and every module
                with contextlib.suppress(OSError):
                    parts.append((entry.name, *stat_key(entry.stat())))
        _parser_key = tuple(parts)
    return _parser_key


def _absolute(path: Path) -> str:
    return os.path.abspath(path)  # noqa: PTH100 - no symlinks resolved: the path as named


def _entry_path(path: Path) -> Path:
    # A name, not a proof: two paths sharing it evict each other (the entry names its path).
    name = f"{zlib.crc32(os.fsencode(_absolute(path))):08x}.marshal"
    return harness_home().joinpath(*_DIR, name)


def get(path: Path, st: os.stat_result) -> tuple[bool, Any]:
    """(True, data) when the cache holds the parse of ``path`` as ``st`` describes it."""
    try:
        raw = _entry_path(path).read_bytes()
        # Our own file under HARNESS_HOME (marshal only builds builtin values).
        fmt, key, absolute, recorded, written_ns, encoded = marshal.loads(raw)  # noqa: S302
    except (OSError, EOFError, ValueError, TypeError):
        return False, None
    if (fmt != FORMAT or absolute != _absolute(path) or tuple(recorded) != stat_key(st)
            or tuple(key) != parser_key() or not vouches(st, written_ns)):
        return False, None
    try:
        return True, _decode(encoded, str(path))
    except (ValueError, TypeError, IndexError, KeyError, RecursionError):
        return False, None


def put(path: Path, st: os.stat_result, data: Any) -> None:
    """Keep ``data``, parsed from ``path`` whose stat before reading was ``st``."""
    try:
        encoded = _encode(data)
    except (TypeError, RecursionError):
        return  # a value marshal cannot hold: parsed every time
    with contextlib.suppress(OSError, ValueError):  # ValueError: deeper than marshal goes
        entry = _entry_path(path)  # (HARNESS_HOME itself may be unwritable)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        entry.parent.mkdir(parents=True, exist_ok=True)
        try:
            with tmp.open("wb") as fh:
                written_ns = os.fstat(fh.fileno()).st_mtime_ns  # the file system's clock
                fh.write(marshal.dumps((FORMAT, parser_key(), _absolute(path),
                                        stat_key(st), written_ns, encoded)))
            tmp.replace(entry)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()


_SCALARS = (str, int, float, bool, bytes, type(None))


def _encode(value: Any) -> Any:
    from harness.yamlpos import PosDict, PosList

    if isinstance(value, PosDict):
        return ("d", value.pos.line, [(k, value.pos_of(k).line, _encode(v))
                                      for k, v in value.items()])
    if isinstance(value, PosList):
        return ("l", value.pos.line, [(value.pos_of(i).line, _encode(v))
                                      for i, v in enumerate(value)])
    if type(value) in _SCALARS:  # exactly: a subclass would come back as its base
        return ("s", value)
    raise TypeError(type(value).__name__)


def _decode(encoded: Any, source: str) -> Any:
    from harness.yamlpos import Pos, PosDict, PosList

    kind = encoded[0]
    if kind == "s":
        return encoded[1]
    if kind == "d":
        result = PosDict()
        result.pos = Pos(source, encoded[1])
        for key, line, value in encoded[2]:
            result[key] = _decode(value, source)
            result.key_pos[key] = Pos(source, line)
        return result
    if kind == "l":
        items = PosList(_decode(value, source) for _, value in encoded[2])
        items.pos = Pos(source, encoded[1])
        items.item_pos = [Pos(source, line) for line, _ in encoded[2]]
        return items
    raise ValueError(kind)
