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

import yaml

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


class _Loader(yaml.SafeLoader):
    source = "<string>"


def _mark(loader: _Loader, node: yaml.Node) -> Pos:
    return Pos(loader.source, node.start_mark.line + 1)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> PosDict:
    loader.flatten_mapping(node)
    result = PosDict()
    result.pos = _mark(loader, node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise ConfigError(f"{_mark(loader, key_node)}: keys must be strings, not "
                              f"{quote(key)}")
        if key in result:
            raise ConfigError(f"{_mark(loader, key_node)}: duplicate key {key!r} "
                              f"(first at line {result.key_pos[key].line})")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_pos[key] = _mark(loader, key_node)
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> PosList:
    result = PosList(loader.construct_object(child, deep=True) for child in node.value)
    result.pos = _mark(loader, node)
    result.item_pos = [_mark(loader, child) for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)

# libyaml's parser (when PyYAML was built with it) with the same constructors: ~10x faster on
# a recipe. Its marks carry lines too; anything it refuses, and any error at all, is parsed
# again by the pure-Python loader above, so every error message and position is that
# loader's own (see load_yaml_text).
_FastLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):
    class _CLoader(yaml.CSafeLoader):
        source = "<string>"

    _CLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _CLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                             _construct_sequence)
    _FastLoader = _CLoader
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE  # what the pure reader refuses up front


MAX_EXPANDED_NODES = 200_000  # a recipe has hundreds; a "billion laughs" bomb has billions
MAX_QUOTE_CHARS = 200  # how much of a value an error message quotes


def quote(value: Any) -> str:
    """``repr(value)`` cut to :data:`MAX_QUOTE_CHARS` (errors stay one readable line)."""
    text = repr(value)
    if len(text) > MAX_QUOTE_CHARS:
        text = text[: MAX_QUOTE_CHARS - 1] + "…"
    return text


def _check_expansion(root: yaml.Node | None, source: str) -> None:
    """Refuse a document whose aliases expand to more than MAX_EXPANDED_NODES nodes.

    Aliases share one node, so the graph is small; its expansion (what a consumer walking
    the data sees) is computed bottom-up with one memo entry per distinct node.
    """
    if root is None:
        return
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        if total > MAX_EXPANDED_NODES:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: aliases expand to more "
                              f"than {MAX_EXPANDED_NODES} values (an alias bomb?)")
        sizes[id(node)] = total


def _load_fast(text: str, source: str) -> tuple[bool, Any]:
    """(True, data) when libyaml parsed ``text`` without any error; else (False, None)."""
    if _FastLoader is None or _NON_PRINTABLE.search(text):
        return False, None
    try:
        loader = _FastLoader(text)
        loader.source = source
        try:
            node = loader.get_single_node()
            _check_expansion(node, source)
            return True, None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except Exception:  # the pure loader says what is wrong, and where
        return False, None


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text; ``source`` names it in positions and errors."""
    parsed, data = _load_fast(text, source)
    if parsed:
        return data
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        raise ConfigError(f"{source}: YAML error: {str(exc)[:MAX_QUOTE_CHARS]}") from None
    loader.source = source
    try:
        node = loader.get_single_node()
        _check_expansion(node, source)
        return None if node is None else loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}:{line}: YAML syntax error: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML error: {str(exc)[:MAX_QUOTE_CHARS]}") from exc
    finally:
        loader.dispose()


def load_yaml(path: Path) -> Any:
    """Parse a YAML file with positions."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                          f"at offset {exc.start})") from exc
    return load_yaml_text(text, str(path))


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
