"""YAML loading that remembers where every key came from, for ``file:line`` error messages.

Mappings load as :class:`PosDict` and sequences as :class:`PosList`: plain ``dict``/``list``
subclasses that also record the position of each key / item. Duplicate keys, which PyYAML
silently accepts, are an error here. Validation helpers with "did you mean" suggestions live
here too, so that recipes, asset sets and the user config report errors the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import ConfigError


@dataclass(frozen=True)
class Pos:
    """A place in a file (lines count from 1)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


UNKNOWN = Pos("<unknown>", 0)


class PosDict(dict[str, Any]):
    """A mapping that knows its own position and the position of each of its keys."""

    pos: Pos = UNKNOWN

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_pos: dict[str, Pos] = {}

    def pos_of(self, key: str) -> Pos:
        return self.key_pos.get(key, self.pos)


class PosList(list[Any]):
    """A sequence that knows its own position and the position of each item."""

    pos: Pos = UNKNOWN

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_pos: list[Pos] = []

    def pos_of(self, index: int) -> Pos:
        return self.item_pos[index] if index < len(self.item_pos) else self.pos


MAX_EXPANDED_NODES = 200_000  # a recipe has hundreds; a "billion laughs" bomb has billions
MAX_QUOTE_CHARS = 200  # how much of a value an error message quotes


def quote(value: Any) -> str:
    """``repr(value)`` cut to :data:`MAX_QUOTE_CHARS` (errors stay one readable line)."""
    text = repr(value)
    if len(text) > MAX_QUOTE_CHARS:
        text = text[: MAX_QUOTE_CHARS - 1] + "…"
    return text


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text; ``source`` names it in positions and errors."""
    from harness.yamlparse import parse  # PyYAML: ~15 ms, only when something is parsed

    return parse(text, source)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file with positions (from :mod:`harness.yamlcache` while the file is
    provably the one parsed before)."""
    from harness import yamlcache

    try:
        st = path.stat()  # before reading: an edit meanwhile leaves a stale key, not data
        hit, data = yamlcache.get(path, st)
        if hit:
            return data
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                          f"at offset {exc.start})") from exc
    data = load_yaml_text(text, str(path))
    yamlcache.put(path, st, data)
    return data


# ---- validation helpers ---------------------------------------------------------------------


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def pos_of(container: Any, key: str | int) -> Pos:
    if isinstance(container, PosDict) and isinstance(key, str):
        return container.pos_of(key)
    if isinstance(container, PosList) and isinstance(key, int):
        return container.pos_of(key)
    return getattr(container, "pos", UNKNOWN)


def check_keys(data: PosDict, allowed: Iterable[str], what: str) -> None:
    """Refuse keys not in ``allowed``, naming the closest allowed one."""
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{data.pos_of(key)}: unknown key {quote(key)} in {what}"
                              f"{suggest(key, allowed)}; allowed: {', '.join(allowed)}")


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping", type(None): "null"}


def type_name(types: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def expect(container: Any, key: str | int, types: tuple[type, ...], what: str) -> Any:
    """Return ``container[key]`` after checking its type (bool is never an int here)."""
    value = container[key]
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"{pos_of(container, key)}: {what} must be {type_name(types)}, "
                          f"not {type(value).__name__} {quote(value)}")
    return value


_Container = TypeVar("_Container", PosDict, PosList)


def _ensure(kind: type[_Container], noun: str, value: Any, where: Pos, what: str) -> _Container:
    """``value`` if it is a ``kind``; an empty one placed at ``where`` if it is None."""
    if isinstance(value, kind):
        return value
    if value is None:
        empty = kind()
        empty.pos = where
        return empty
    raise ConfigError(f"{where}: {what} must be {noun}, not {type(value).__name__}")


def ensure_dict(value: Any, where: Pos, what: str) -> PosDict:
    return _ensure(PosDict, "a mapping", value, where, what)


def ensure_list(value: Any, where: Pos, what: str) -> PosList:
    return _ensure(PosList, "a list", value, where, what)
